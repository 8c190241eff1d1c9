-- Specs of hrm.config: defaults, overrides, presets and refused configurations.
local hrm = require "hrm"

describe("hrm.config.hrm_v1", function()
   it("fills the reference defaults", function()
      local c = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }
      assert.equal(512, c.hidden_size)
      assert.equal(8, c.num_heads)
      assert.equal(16, c.halt_max_steps)
      assert.equal(0.1, c.halt_exploration_prob)
      assert.equal("rope", c.pos_encodings)
      assert.equal(512, c.puzzle_emb_ndim)
      assert.equal("stablemax", c.loss)
   end)

   it("accepts the reference's run-time keys unchanged", function()
      local c = hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81, batch_size = 768,
                                   forward_dtype = "bfloat16", causal = false }
      assert.is_nil(c.batch_size)
      assert.equal("bfloat16", c.forward_dtype)
   end)

   it("takes forward_dtype float32 (the default) or bfloat16, and refuses anything else", function()
      assert.equal("float32", hrm.config.hrm_v1{ vocab_size = 11, seq_len = 81 }.forward_dtype)
      local m = hrm.Model(hrm.config.tiny{ vocab_size = 11, seq_len = 4, forward_dtype = "bf16" })
      assert.equal("bfloat16", m:config().forward_dtype)
      local ok, err = pcall(hrm.Model, hrm.config.tiny{ vocab_size = 11, seq_len = 4, forward_dtype = "float16" })
      assert.is_false(ok)
      assert.truthy(err:find("field 'forward_dtype' must be \"float32\" or \"bfloat16\", got float16", 1, true))
   end)

   it("refuses unknown keys, naming them", function()
      assert.has_error(function() hrm.config.hrm_v1{ hiden_size = 3 } end, "hrm.config: unknown field 'hiden_size'")
   end)

   it("refuses impossible configs with the field's name", function()
      local ok, err = pcall(hrm.Model, { hidden_size = 100, num_heads = 101, vocab_size = 11, seq_len = 4 })
      assert.is_false(ok)
      assert.truthy(err:find("num_heads", 1, true))
      ok, err = pcall(hrm.Model, { H_layers = 0, vocab_size = 11, seq_len = 4 })
      assert.is_false(ok)
      assert.truthy(err:find("H_layers", 1, true))
      ok, err = pcall(hrm.Model, { hidden_size = 64, num_heads = 2 })
      assert.is_false(ok)
      assert.truthy(err:find("vocab_size", 1, true))
   end)

   it("gives CPU-sized presets by name", function()
      assert.equal(128, hrm.config.preset("small").hidden_size)
      assert.equal(64, hrm.config.tiny{ seq_len = 4 }.puzzle_emb_ndim)
      assert.equal(256, hrm.config.small{ hidden_size = 256 }.puzzle_emb_ndim)
      assert.has_error(function() hrm.config.preset("huge") end)
   end)
end)
