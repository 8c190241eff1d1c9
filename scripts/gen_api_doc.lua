-- scripts/gen_api_doc.lua — writes the API reference from the help records:
-- `hrm scripts/gen_api_doc.lua > docs/api.md`. spec/doc_spec.lua fails when docs/api.md differs.
io.write(require("hrm.doc").markdown())
