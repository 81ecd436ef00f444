"""Analysis answers as tables to hand on: CSV and xlsx with Chinese or English headers.

Every analysis that answers a list (pipe query, cross-section, profile, clearances, clashes,
isolation, trace, excavation, QC findings, shelter zones and uncovered units, shutdown impact,
urban flooding, gas adjacent spaces) lays it flat here: :mod:`~cim.services.tables.catalog`
finds an answer's tables; :mod:`.pipes`, :mod:`.shelters`, :mod:`.simulation` and :mod:`.gas`
declare their columns; :mod:`.language` holds the words (``zh.yaml``, ``en.yaml``);
:mod:`.writers` writes CSV (UTF-8 with BOM) and xlsx. The rows are the answer's own, so a
table holds what the JSON holds, in the same order.
"""
