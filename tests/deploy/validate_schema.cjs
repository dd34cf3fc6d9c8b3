// Validates rendered Kubernetes objects (a JSON array, argv[2]) against the OpenAPI schemas
// that the npm package kubernetes-models ships (ajv underneath). scripts/setup.sh installs
// it into .cache/npm; NODE_PATH points there. Exit 77 when the package is missing.
"use strict";
const fs = require("fs");
const optional = require("./optional.cjs");

optional("kubernetes-models/v1/ConfigMap", "schema validation");

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1/<Kind>"; core "v1" -> "v1/<Kind>"
function modelFor(obj) {
    const path = `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
    const mod = require(path);
    return mod[obj.kind] || mod.default;
}

const objs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const obj of objs) {
    const name = `schemas: ${obj.apiVersion} ${obj.kind} ${obj.metadata && obj.metadata.name}`;
    try {
        const Model = modelFor(obj);
        new Model(obj).validate();
        console.log(`ok - ${name} matches the Kubernetes schema`);
    } catch (e) {
        failed++;
        console.log(`not ok - ${name}: ${String(e.message).split("\n")[0]}`);
    }
}
process.exit(failed ? 1 : 0);
