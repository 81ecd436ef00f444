// cim viewer languages: the string tables (i18n/<locale>.json, one file per language, same keys),
// the locale choice (remembered switch, else the browser's languages: any zh* → zh-CN, else en),
// t(key, params), and number/date formats of the locale. Loaded before app.js; every UI text
// of the viewer comes from here, so a third language is one more JSON file and a LOCALES entry.
"use strict";

(function i18n() {
  const LOCALES = ["zh-CN", "en"]; // the first is the default of a Chinese browser
  const FALLBACK = "en";
  const STORAGE_KEY = "cim-locale";
  let table = {};
  let locale = FALLBACK;
  let numberFormat = null;

  function browserLocale() {
    const wanted = navigator.languages && navigator.languages.length
      ? navigator.languages
      : [navigator.language || FALLBACK];
    if (wanted.some((tag) => /^zh\b/i.test(tag))) return "zh-CN";
    return FALLBACK;
  }

  function chosenLocale() {
    let stored = null;
    try {
      stored = localStorage.getItem(STORAGE_KEY);
    } catch (error) {
      stored = null; // storage refused (privacy mode): follow the browser
    }
    return LOCALES.includes(stored) ? stored : browserLocale();
  }

  function has(key) {
    return Object.prototype.hasOwnProperty.call(table, key);
  }

  // The text of `key` with {name} replaced by params.name; a missing key shows itself (and warns),
  // so a forgotten string is visible rather than blank.
  function t(key, params) {
    if (!has(key)) {
      console.warn(`cim viewer: no text for ${key} in ${locale}`);
      return key;
    }
    return table[key].replace(/\{(\w+)\}/g, (whole, name) =>
      params && params[name] !== undefined && params[name] !== null ? String(params[name]) : whole);
  }

  // Sets an element's text from a key and remembers key and params, so a language switch
  // re-translates it in place (apply).
  function set(element, key, params) {
    element.dataset.i18n = key;
    if (params) element.dataset.i18nParams = JSON.stringify(params);
    else delete element.dataset.i18nParams;
    element.textContent = t(key, params);
    return element;
  }

  function span(key, params) {
    return set(document.createElement("span"), key, params);
  }

  // A name given in each language by the data (CJJ 61 classes: name and nameZh).
  function setName(element, names) {
    element.dataset.i18nNames = JSON.stringify(names);
    element.textContent = localName(names);
    return element;
  }

  function localName(names) {
    return names[locale] || names[FALLBACK] || Object.values(names)[0] || "";
  }

  function apply(root = document) {
    for (const el of root.querySelectorAll("[data-i18n]")) {
      const params = el.dataset.i18nParams ? JSON.parse(el.dataset.i18nParams) : undefined;
      el.textContent = t(el.dataset.i18n, params);
    }
    for (const el of root.querySelectorAll("[data-i18n-names]")) {
      el.textContent = localName(JSON.parse(el.dataset.i18nNames));
    }
    for (const [attribute, name] of [["i18nTitle", "title"], ["i18nPlaceholder", "placeholder"], ["i18nAriaLabel", "aria-label"], ["i18nAlt", "alt"]]) {
      const selector = `[data-${attribute.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}]`;
      for (const el of root.querySelectorAll(selector)) el.setAttribute(name, t(el.dataset[attribute]));
    }
    for (const button of root.querySelectorAll("[data-locale]")) {
      button.setAttribute("aria-pressed", String(button.dataset.locale === locale));
    }
  }

  async function load(wanted) {
    const response = await fetch(`i18n/${wanted}.json`);
    if (!response.ok) throw new Error(`i18n/${wanted}.json: HTTP ${response.status}`);
    table = await response.json();
    locale = wanted;
    numberFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 3, useGrouping: false });
    document.documentElement.lang = locale;
    if (has("page.title")) document.title = t("page.title");
  }

  // Switch, remember and re-translate everything marked; listeners redraw the rest.
  async function setLocale(wanted) {
    if (!LOCALES.includes(wanted)) return;
    try {
      localStorage.setItem(STORAGE_KEY, wanted);
    } catch (error) {
      // not remembered; the switch still applies to this page
    }
    await load(wanted);
    apply();
    document.dispatchEvent(new CustomEvent("cim-locale", { detail: locale }));
  }

  // Measured values: locale decimals, at most millimetres, no grouping (ids and years read as
  // numbers too, and 1,234 would be mistaken for one point two in some locales).
  function number(value) {
    return numberFormat ? numberFormat.format(value) : String(value);
  }

  // A count of people or things, grouped by the locale (1,234).
  function count(value) {
    return new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(value);
  }

  function percent(ratio) {
    if (ratio === null || ratio === undefined) return "–";
    return new Intl.NumberFormat(locale, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(ratio);
  }

  function date(value) {
    const when = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(when.getTime())) return String(value);
    return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(when);
  }

  const ready = (async () => {
    const wanted = chosenLocale();
    try {
      await load(wanted);
    } catch (error) {
      console.warn(`cim viewer: ${error.message}; using ${FALLBACK}`);
      if (wanted !== FALLBACK) await load(FALLBACK);
    }
    apply();
    for (const button of document.querySelectorAll("[data-locale]")) {
      button.addEventListener("click", () => setLocale(button.dataset.locale));
    }
  })();

  window.i18n = {
    ready, t, has, set, span, setName, localName, apply, setLocale, number, count, percent, date,
    locales: LOCALES,
    get locale() {
      return locale;
    },
  };
})();
