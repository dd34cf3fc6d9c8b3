// Validates custom resources against the openAPIV3Schema of their CustomResourceDefinition
// (deploy/k8s/base/crds.yaml), with ajv (which kubernetes-models ships; scripts/setup.sh
// installs it into .cache/npm, NODE_PATH points there). argv[2]: a JSON file
// {"crds": [CRD...], "cases": [{"name", "ok", "obj"}...]}: each case must validate (ok) or be
// refused (not ok), the way the API server's schema check would. Exit 77 without ajv.
"use strict";
const fs = require("fs");
const optional = require("./optional.cjs");

const Ajv = optional("ajv", "custom resource validation");
const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: false });
const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const byKind = {};
for (const crd of input.crds) {
    const v = crd.spec.versions.find((x) => x.storage);
    byKind[`${crd.spec.group}/${v.name} ${crd.spec.names.kind}`] = ajv.compile(
        v.schema.openAPIV3Schema
    );
}
let failed = 0;
for (const c of input.cases) {
    const validate = byKind[`${c.obj.apiVersion} ${c.obj.kind}`];
    const ok = validate !== undefined && validate(c.obj);
    const why = validate === undefined ? "no CRD for it" : ajv.errorsText(validate.errors);
    if (ok === c.ok) {
        console.log(`ok - crds: ${c.name} ${c.ok ? "validates" : `refused (${why})`}`);
    } else {
        failed++;
        console.log(`not ok - crds: ${c.name}: ${c.ok ? `refused: ${why}` : "validated"}`);
    }
}
process.exit(failed ? 1 : 0);
