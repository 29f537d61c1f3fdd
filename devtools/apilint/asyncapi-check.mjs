// Validates an AsyncAPI document with the AsyncAPI initiative's own parser (the one its
// CLI and generators use): every diagnostic of severity error or warning fails.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"));
const severities = ["error", "warning", "info", "hint"];
let failed = !document;
for (const d of diagnostics) {
  const where = d.path.join(".") || "(document)";
  console.log(`${severities[d.severity]} ${d.code} ${where}: ${d.message}`);
  if (d.severity <= 1) failed = true;
}
if (document) {
  const channels = document.channels().all().map((c) => c.id());
  const messages = document.allMessages().all().length;
  console.log(`${path}: AsyncAPI ${document.version()}, channels ${channels.join(", ")}, ${messages} messages`);
}
console.log(failed ? "invalid" : "valid");
process.exit(failed ? 1 : 0);
