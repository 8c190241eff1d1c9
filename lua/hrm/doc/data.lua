-- hrm.doc.data — API records of hrm.data, hrm.checkpoint, hrm.safetensors and hrm.json.
-- Each record: { path | {paths}, signature, description, example } (see lua/hrm/doc.lua).
return {
{ "hrm.data", "hrm.data", "The C dataset engine behind training: examples in the reference's layout (inputs, labels, puzzle identifiers, CSR puzzle and group indices), sampled into preallocated batches in C. Task adapters fill it (task:dataset{...}); .hrmd files and the reference's numpy folders load memory-mapped.", "local ds = require(\"tasks.sudoku\").new{size = 4}:dataset{generate = 100, seed = 1}\nprint(ds:size())" },
{ "hrm.data.Dataset.new", "hrm.data.Dataset.new{vocab_size, seq_len, pad_id = 0, ignore_label_id = 0, blank_identifier_id = 0, num_puzzle_identifiers = 1 [, inputs, labels, ...]} -> ds", "An empty dataset with this metadata; given arrays (as ds:add takes them) are added at once.", "local ds = hrm.data.Dataset.new{vocab_size = 11, seq_len = 4, inputs = {{1, 2, 3, 4}}, labels = {{4, 3, 2, 1}}}" },
{ "hrm.data.Dataset.add", "ds:add{inputs, labels [, puzzle_identifiers, puzzle_indices, group_indices, n]} -> ds", "Appends examples: inputs and labels are Lua tables of rows (each seq_len token ids), flat lists, u8/i32 tensors or FFI arrays (N x seq_len); without the index arrays every example is its own puzzle and group.", "ds:add{inputs = {{1, 2, 3, 4}, {2, 2, 3, 3}}, labels = {{4, 3, 2, 1}, {3, 3, 2, 2}}}" },
{ { "hrm.data.Dataset.load", "hrm.data.load" }, "hrm.data.load(path [, split]) -> ds | nil, err", "Opens a .hrmd file, a reference split folder (holding dataset.json), or a dataset root with split = \"train\" / \"test\"; token arrays are memory-mapped.", 'local ds = assert(hrm.data.load("data/sudoku.hrmd"))' },
{ "hrm.data.Dataset.save", "ds:save(path) -> true | nil, err", "Writes the dataset as .hrmd (checksummed, atomic).", 'assert(ds:save("data/sudoku.hrmd"))' },
{ { "hrm.data.Dataset.size", "hrm.data.Dataset.puzzles", "hrm.data.Dataset.groups" }, "ds:size() / ds:puzzles() / ds:groups() -> n", "The number of examples, puzzles and groups.", "print(ds:size(), ds:puzzles(), ds:groups())" },
{ "hrm.data.Dataset.meta", "ds:meta() -> table", "The metadata: vocab_size, seq_len, pad_id, ignore_label_id, blank_identifier_id, num_puzzle_identifiers, ...", "print(ds:meta().seq_len)" },
{ "hrm.data.Dataset.example", "ds:example(i) -> inputs, labels", "Example i (1-based) as Lua lists of token ids.", "local x, y = ds:example(1)" },
{ { "hrm.data.Dataset.identifier", "hrm.data.Dataset.set_identifiers" }, "ds:identifier(id) -> name | nil;  ds:set_identifiers(list)", "Names of puzzle identifiers: list[i] names id i - 1 (identifiers.json's order); a table with a [0] entry is read as id -> name.", "ds:set_identifiers({\"<blank>\", \"task_a\"})\nprint(ds:identifier(1))" },
{ "hrm.data.Dataset.free", "ds:free()", "Releases the dataset now.", "ds:free()" },
{ "hrm.data.Dataset.batches", "ds:batches{batch_size = B, train = false, seed = 0, epochs, epochs_per_iter = 1} -> it", "A batch iterator: training batches are sampled by groups as the reference does, test batches run in order. it:next() returns {inputs = (B, S) i32, labels = (B, S) i32, puzzle_identifiers = (B) i32, count = real rows} (the same tensors every call) or nil at the end; `for batch in it do ... end` works too.", "for batch in ds:batches{batch_size = 8} do print(batch.count) end" },
{ "hrm.data.Batches.next", "it:next() -> batch | nil (the end) | nil, err", "The next batch.", "local batch = it:next()" },
{ { "hrm.data.Batches.state", "hrm.data.Batches.set_state" }, "it:state() -> {seed, epoch, index, draws};  it:set_state(t)", "The sampler's position as plain numbers (checkpoints save it), and continuing exactly there.", "local s = it:state()\nit:set_state(s)" },
{ { "hrm.data.Batches.epoch", "hrm.data.Batches.reset" }, "it:epoch() -> n;  it:reset()", "Epochs completed so far; back to the first batch of epoch 0.", "it:reset()" },

-- hrm.checkpoint
{ "hrm.checkpoint", "hrm.checkpoint", "Whole training states in one .hrm file (model, optimizer, carries, sampler, step, RNGs, extra): a resumed run continues bit for bit. Files are checksummed, written atomically and verified on open.", 'hrm.checkpoint.save("runs/x/last.hrm", {model = model, optim = opt, step = 100})' },
{ "hrm.checkpoint.save", "hrm.checkpoint.save(path, {model, optim, carry | {carries}, data = sampler, step, extra, tensors}) -> true | nil, err", "Saves a training state between steps (after opt:step; gradients are not stored). extra holds JSON values, tensors named tensors (EMA weights).", 'assert(hrm.checkpoint.save("runs/x/last.hrm", {model = model, optim = opt, data = it, step = step}))' },
{ "hrm.checkpoint.load", "hrm.checkpoint.load(path [, {data = sampler, device, rng = true}]) -> state | nil, err", "Rebuilds the saved state {model, optim, carry, data_state, step, extra, meta}; restores the global RNG (unless rng = false) and the given sampler's position.", 'local st = assert(hrm.checkpoint.load("runs/x/last.hrm", {data = it}))' },
{ "hrm.checkpoint.info", "hrm.checkpoint.info(path) -> meta | nil, err", "The checkpoint's meta table without reading any tensor.", 'print(hrm.checkpoint.info("weights/sudoku4.hrm").step)' },
{ "hrm.checkpoint.save_model", "hrm.checkpoint.save_model(model, path) -> true | nil, err", "The function behind model:save.", 'hrm.checkpoint.save_model(model, "m.hrm")' },
{ "hrm.checkpoint.load_model", "hrm.checkpoint.load_model(path [, opts]) -> model | nil, err", "The function behind hrm.Model.load.", 'local m = hrm.checkpoint.load_model("weights/sudoku4.hrm")' },
{ "hrm.checkpoint.load_weights", "hrm.checkpoint.load_weights(model, path) -> true | nil, err", "Reads a model file's or checkpoint's weights into an existing model of the same shapes; every tensor is checked before the first is copied.", 'assert(hrm.checkpoint.load_weights(model, "runs/x/best.hrm"))' },
{ "hrm.checkpoint.validate_carry", "hrm.checkpoint.validate_carry(carry, config [, what]) -> true | nil, err", "Checks a restored carry's tokens, ids, halted flags and steps against a model config.", "assert(hrm.checkpoint.validate_carry(st.carry, model:config()))" },

-- hrm.safetensors
{ "hrm.safetensors", "hrm.safetensors", "Reading and writing safetensors files as tables of named tensors (validated by the C reader; tensors keep their stored dtype).", 'local t = assert(hrm.safetensors.load("model.safetensors"))' },
{ "hrm.safetensors.load", "hrm.safetensors.load(path) -> {name = tensor}, names | nil, err", "All tensors of a file, and their names sorted.", 'local tensors, names = assert(hrm.safetensors.load("model.safetensors"))' },
{ "hrm.safetensors.save", "hrm.safetensors.save(path, {name = tensor}) -> true | nil, err", "Writes the tensors (atomically).", 'assert(hrm.safetensors.save("x.safetensors", {x = hrm.Tensor.ones(2)}))' },

-- hrm.json
{ "hrm.json", "hrm.json", "JSON encoding and decoding for configs, metrics and run files.", 'print(hrm.json.encode({a = 1, b = {true, false}}))' },
{ "hrm.json.encode", "hrm.json.encode(value [, opts]) -> string", "JSON text of a Lua value; functions, cycles and NaN are errors.", "print(hrm.json.encode({steps = 10}))" },
{ "hrm.json.decode", "hrm.json.decode(text [, {null = value}]) -> value | nil, err", "A Lua value from JSON text; null becomes hrm.json.null (or opts.null).", 'local t = assert(hrm.json.decode("[1, 2]"))' },
{ { "hrm.json.read", "hrm.json.write" }, "hrm.json.read(path) -> value | nil, err;  hrm.json.write(path, value [, opts]) -> true | nil, err", "A JSON file in and out.", 'local cfg = assert(hrm.json.read("runs/x/config.json"))' },
{ { "hrm.json.array", "hrm.json.object", "hrm.json.is_array" }, "hrm.json.array([t]) / hrm.json.object([t]) -> t;  hrm.json.is_array(t)", "Marks a table so that it encodes as [] or {} even when empty.", "print(hrm.json.encode({list = hrm.json.array()}))" },
{ "hrm.json.quote", "hrm.json.quote(s) -> string", "A Lua string as a JSON string literal.", 'print(hrm.json.quote("a\\"b"))' },
}
