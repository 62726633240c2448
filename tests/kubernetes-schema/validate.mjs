// Validates every Kubernetes object in the YAML files given as arguments against the OpenAPI schema of its kind,
// using kubernetes-models (generated from the Kubernetes API's OpenAPI document; resource.k8s.io/v1 marks 1.34+).
// Prints one line per object ("ok <kind> <name>" or "invalid <kind> <name>: <reason>"); exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let invalid = 0;
for (const file of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (document.errors.length > 0) {
      console.log(`invalid yaml ${file}: ${document.errors[0].message}`);
      invalid++;
      continue;
    }
    const object = document.toJS();
    if (object === null) continue;
    const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : ["", object.apiVersion];
    const name = `${object.kind} ${object.metadata?.name}`;
    let Model;
    try {
      ({ [object.kind]: Model } = await import(`kubernetes-models/${group ? `${group}/` : ""}${version}/${object.kind}`));
    } catch {
      console.log(`invalid ${name}: no schema for ${object.apiVersion} ${object.kind}`);
      invalid++;
      continue;
    }
    try {
      new Model(object).validate();
      console.log(`ok ${name}`);
    } catch (error) {
      console.log(`invalid ${name}: ${error.message.replaceAll("\n", " ")}`);
      invalid++;
    }
  }
}
process.exit(invalid > 0 ? 1 : 0);
