// Builds the app into dist/: the pages, and one bundle per page (the kit from its source,
// Leaflet) with the stylesheet, minified, with source maps. Prints each file's size.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
rmSync(here("dist"), { recursive: true, force: true });
mkdirSync(here("dist/assets"), { recursive: true });

await build({
  entryPoints: { passenger: here("src/passenger.ts"), driver: here("src/driver.ts"), app: here("src/app.css") },
  outdir: here("dist/assets"),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["es2022"],
  // the kit from its source; its one dependency (openapi-fetch) from this package's lockfile
  alias: { "@ridehail/client": here("../kit/src/index.ts") },
  nodePaths: [here("node_modules")],
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "[name]-[hash]",
  logLevel: "warning",
});
for (const page of readdirSync(here("pages"))) copyFileSync(here(`pages/${page}`), here(`dist/${page}`));

for (const name of readdirSync(here("dist/assets")).filter((n) => !n.endsWith(".map"))) {
  const bytes = readFileSync(here(`dist/assets/${name}`));
  const kb = (n) => (n / 1024).toFixed(1) + " KB";
  console.log(`dist/assets/${name}: ${kb(statSync(here(`dist/assets/${name}`)).size)} (${kb(gzipSync(bytes).length)} gzipped)`);
}
