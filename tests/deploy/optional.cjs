// An npm package the deploy checks need but the suite does not (scripts/setup.sh installs it
// into .cache/npm; NODE_PATH points there): require(name), or exit 77 (skipped) saying which
// check goes without it.
"use strict";

module.exports = function optional(name, check) {
    try {
        return require(name);
    } catch (e) {
        console.log(`${name.split("/")[0]} not installed (npm); ${check} skipped`);
        return process.exit(77);
    }
};
