-- Specs of hrm.schedule: the reference's warmup + cosine multiplier (HRM_SPEC §4.3).
local hrm = require "hrm"

describe("hrm.schedule.warmup_cosine", function()
   it("warms up linearly from step 1", function()
      local f = hrm.schedule.warmup_cosine{ warmup = 100, total = 1000 }
      assert.near(0.01, f(1), 1e-12)
      assert.near(0.5, f(50), 1e-12)
   end)

   it("stays constant after warmup with the default min_ratio 1", function()
      local f = hrm.schedule.warmup_cosine{ warmup = 100, total = 1000 }
      assert.equal(1, f(100))
      assert.equal(1, f(999))
   end)

   it("decays along a half cosine to min_ratio", function()
      local f = hrm.schedule.warmup_cosine{ warmup = 0, total = 100, min_ratio = 0.1 }
      assert.near(1, f(0), 1e-12)
      assert.near(0.1 + 0.9 * 0.5, f(50), 1e-12)
      assert.near(0.1, f(100), 1e-12)
   end)

   it("refuses missing options", function()
      assert.has_error(function() hrm.schedule.warmup_cosine{ total = 10 } end)
   end)
end)
