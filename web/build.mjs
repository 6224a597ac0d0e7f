// Builds the browser bundles (one per page) and the node entry the tests use to run the reducer.
import { build } from "esbuild";
import { cpSync, existsSync, mkdirSync, readdirSync } from "node:fs";

const pages = existsSync("src/pages")
  ? readdirSync("src/pages")
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `src/pages/${f}`)
  : [];
mkdirSync("dist", { recursive: true });

await build({
  entryPoints: pages,
  outdir: "dist",
  bundle: true,
  format: "iife",
  target: ["chrome110", "firefox115", "safari16"],
  minify: true,
  sourcemap: true,
  logLevel: "warning",
});
await build({
  entryPoints: ["test/fold-cli.ts"],
  outfile: "dist/fold-cli.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  logLevel: "warning",
});
if (existsSync("src/styles.css")) cpSync("src/styles.css", "dist/styles.css");
console.log(`built ${pages.length} pages into web/dist`);
