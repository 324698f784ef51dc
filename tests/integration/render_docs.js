// Runs the /docs page's inline script under Node with a stub DOM and fetch,
// on a given OpenAPI document, and prints what the page would show as JSON:
//   node render_docs.js docs.html openapi.json
// {fetched: [urls], title, meta: html, app: html}
"use strict";
const fs = require("fs");
const vm = require("vm");

const page = fs.readFileSync(process.argv[2], "utf8");
const spec = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
if (scripts.length !== 1) throw new Error(`expected one inline script, found ${scripts.length}`);

const elements = {};
const element = (id) =>
  elements[id] || (elements[id] = { id, innerHTML: "", textContent: "", addEventListener() {} });
const document = { title: "", getElementById: element, querySelectorAll: () => [] };
const fetched = [];
const context = {
  document,
  fetch(url) {
    fetched.push(String(url));
    return Promise.resolve({ ok: true, status: 200, json: () => Promise.resolve(spec) });
  },
};
context.window = context;
vm.createContext(context);
vm.runInContext(scripts[0], context, { filename: "docs.html" });
if (!context.docsReady) throw new Error("the page did not start rendering");
context.docsReady.then(
  () => {
    process.stdout.write(JSON.stringify({
      fetched,
      title: document.title,
      meta: element("meta").innerHTML,
      app: element("app").innerHTML,
    }));
  },
  (err) => {
    console.error("render failed:", err);
    process.exit(1);
  });
