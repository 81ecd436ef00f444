// Validate glb files (or the glb inside b3dm files) with the Khronos glTF validator.
// Usage: node gltf_validate.js FILE...; prints one JSON object {file: {errors, warnings, messages}}.
const fs = require("fs");
const validator = require("gltf-validator");

function glbOf(bytes) {
  if (bytes.slice(0, 4).toString() !== "b3dm") return bytes;
  const ft = bytes.readUInt32LE(12) + bytes.readUInt32LE(16);
  const bt = bytes.readUInt32LE(20) + bytes.readUInt32LE(24);
  return bytes.slice(28 + ft + bt);
}

(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(glbOf(fs.readFileSync(file))), {
      maxIssues: 50,
    });
    out[file] = {
      errors: report.issues.numErrors,
      warnings: report.issues.numWarnings,
      messages: report.issues.messages
        .filter((m) => m.severity <= 1)
        .map((m) => `${m.code} ${m.pointer || ""} ${m.message}`),
    };
  }
  process.stdout.write(JSON.stringify(out));
})();
