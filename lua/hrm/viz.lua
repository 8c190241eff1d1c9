-- hrm.viz — SVG charts written in pure Lua: line charts (training curves) and histograms.
--
-- viz.line_chart{title, series = {{name, xs, ys}, ...}, x_label, y_label [, log_y, width,
-- height, y_min, y_max, x_max, marks]} and viz.histogram{title, counts = {...}, labels = {...} | values =
-- {...}, bins = n, x_label, y_label} return a standalone SVG document (a string) with axes,
-- "nice" ticks, grid lines and a legend; viz.save(path, svg) writes it. Non-finite points are
-- skipped (lines break there). Does not: run external programs or embed fonts/scripts.
local M = {}

local format, concat, floor, log10 = string.format, table.concat, math.floor, math.log10
local huge = math.huge

M.palette = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf" }

local function esc(s)
   return (tostring(s):gsub("[<>&\"']", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
                                          ['"'] = "&quot;", ["'"] = "&#39;" }))
end
M.escape = esc

local function finite(v) return type(v) == "number" and v == v and v ~= huge and v ~= -huge end

-- nice_step(span, n): a 1, 2, 2.5 or 5 times 10^k step giving about n intervals over span.
local function nice_step(span, n)
   if span <= 0 then return 1 end
   local raw = span / n
   local mag = 10 ^ floor(log10(raw))
   local f = raw / mag
   local m = f <= 1 and 1 or f <= 2 and 2 or f <= 2.5 and 2.5 or f <= 5 and 5 or 10
   return m * mag
end

-- ticks(lo, hi [, n]) -> list of tick values covering [lo, hi], the nice bounds and the step.
function M.ticks(lo, hi, n)
   n = n or 5
   if lo == hi then
      local d = lo == 0 and 1 or math.abs(lo) * 0.1
      lo, hi = lo - d, hi + d
   end
   local step = nice_step(hi - lo, n)
   local a = floor(lo / step + 1e-9) * step
   local b = math.ceil(hi / step - 1e-9) * step
   local t = {}
   local k = 0
   while true do
      local v = a + k * step
      if v > b + step * 1e-9 then break end
      if math.abs(v) < step * 1e-9 then v = 0 end
      t[#t + 1] = v
      k = k + 1
   end
   return t, a, b, step
end

-- Shortest readable text for a tick value, given the tick step.
local function tick_text(v, step)
   if v == 0 then return "0" end
   local av = math.abs(v)
   if av >= 1e5 or av < 1e-3 then return (format("%.3g", v):gsub("e%+?(-?)0*(%d)", "e%1%2")) end
   local decimals = math.max(0, -floor(log10(step) + 1e-9))
   if step * 10 ^ decimals % 1 > 1e-6 then decimals = decimals + 1 end
   return format("%." .. format("%d", decimals) .. "f", v)
end

local function log_ticks(lo, hi)
   local a, b = floor(log10(lo) + 1e-9), math.ceil(log10(hi) - 1e-9)
   if a == b then b = a + 1 end
   local t = {}
   local mults = (b - a) <= 2 and { 1, 2, 5 } or { 1 }
   for e = a, b do
      for _, m in ipairs(mults) do
         local v = m * 10 ^ e
         if v >= 10 ^ a and v <= 10 ^ b then t[#t + 1] = v end
      end
   end
   return t, 10 ^ a, 10 ^ b
end

local function log_text(v)
   local e = log10(v)
   if math.abs(e - floor(e + 0.5)) < 1e-9 and (e >= 4 or e <= -3) then return format("1e%d", floor(e + 0.5)) end
   return format("%g", v)
end

local function text_width(s, size) return #tostring(s) * (size or 12) * 0.6 end

local function header(w, h, title)
   local out = {
      format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
             'font-family="Helvetica, Arial, sans-serif" font-size="12">', w, h, w, h),
   }
   if title then out[#out + 1] = format("<title>%s</title>", esc(title)) end
   out[#out + 1] = format('<rect x="0" y="0" width="%d" height="%d" fill="white"/>', w, h)
   return out
end

local function add(out, s) out[#out + 1] = s end

-- Frame: title, axis labels, grid and ticks for a plot box [x0, x1] x [y0, y1] (pixels).
local function frame(out, o, box, xt, yt)
   local x0, x1, y0, y1 = box.x0, box.x1, box.y0, box.y1
   if o.title then
      add(out, format('<text x="%.1f" y="22" text-anchor="middle" font-size="15" font-weight="bold">%s</text>',
                      (x0 + x1) / 2, esc(o.title)))
   end
   for _, t in ipairs(yt) do
      add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>', x0, t.y, x1, t.y))
      add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>', x0 - 5, t.y, x0, t.y))
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>',
                      x0 - 8, t.y, esc(t.text)))
   end
   for _, t in ipairs(xt) do
      if t.grid ~= false then
         add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>', t.x, y0, t.x, y1))
      end
      add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>', t.x, y1, t.x, y1 + 5))
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>', t.x, y1 + 19, esc(t.text)))
   end
   add(out, format('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>',
                   x0, y0, x1 - x0, y1 - y0))
   if o.x_label then
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="13">%s</text>',
                      (x0 + x1) / 2, y1 + 40, esc(o.x_label)))
   end
   if o.y_label then
      local cx, cy = 18, (y0 + y1) / 2
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="13" ' ..
                      'transform="rotate(-90 %.1f %.1f)">%s</text>', cx, cy, cx, cy, esc(o.y_label)))
   end
end

local function check_opts(o, fname)
   if type(o) ~= "table" then error(fname .. ": bad argument #1: expected an options table", 3) end
   for _, k in ipairs({ "title", "x_label", "y_label" }) do
      if o[k] ~= nil and type(o[k]) ~= "string" then
         error(format("%s: option '%s' must be a string, got %s", fname, k, type(o[k])), 3)
      end
   end
   for _, k in ipairs({ "width", "height" }) do
      if o[k] ~= nil and (type(o[k]) ~= "number" or o[k] < 100) then
         error(format("%s: option '%s' must be a number >= 100", fname, k), 3)
      end
   end
end

-- line_chart{title, series = {{name = s, xs = {...}, ys = {...} [, color, dash = true]} or {s, xs, ys}, ...},
--            x_label, y_label, log_y = false, width = 720, height = 420, y_min, y_max,
--            x_max (where the x-axis ends; default: the last x), markers = auto (drawn when a
--            series has few points), marks = {{x = n, label = s [, style = "line" | "tick"]}, ...}}
--            -> svg string. A "line" mark is a dashed vertical line labelled at the top (a
--            curriculum level change); "tick" marks are triangles on the x-axis, one legend
--            entry per label (checkpoints).
function M.line_chart(o)
   check_opts(o, "viz.line_chart")
   if type(o.series) ~= "table" then error("viz.line_chart: option 'series' must be a list of series", 2) end
   local series = {}
   for i, s in ipairs(o.series) do
      if type(s) ~= "table" then error(format("viz.line_chart: series %d must be a table", i), 2) end
      local name, xs, ys = s.name or s[1], s.xs or s[2], s.ys or s[3]
      if type(xs) ~= "table" or type(ys) ~= "table" then
         error(format("viz.line_chart: series %d needs xs and ys lists", i), 2)
      end
      if #xs ~= #ys then
         error(format("viz.line_chart: series %d has %d xs and %d ys", i, #xs, #ys), 2)
      end
      series[i] = { name = name and tostring(name) or ("series " .. i), xs = xs, ys = ys, dash = s.dash and true or nil,
                    color = s.color or M.palette[(i - 1) % #M.palette + 1] }
   end
   local marks = o.marks or {}
   if type(marks) ~= "table" then error("viz.line_chart: option 'marks' must be a list of {x, label}", 2) end
   for i, m in ipairs(marks) do
      if type(m) ~= "table" or not finite(m.x) then
         error(format("viz.line_chart: mark %d must be a table {x = number, label = text}", i), 2)
      end
   end
   if o.x_max ~= nil and not finite(o.x_max) then error("viz.line_chart: option 'x_max' must be a number", 2) end
   local log_y = o.log_y and true or false
   local xmin, xmax, ymin, ymax = huge, -huge, huge, -huge
   for _, s in ipairs(series) do
      for k = 1, #s.xs do
         local x, y = s.xs[k], s.ys[k]
         if finite(x) and finite(y) and (not log_y or y > 0) then
            if x < xmin then xmin = x end
            if x > xmax then xmax = x end
            if y < ymin then ymin = y end
            if y > ymax then ymax = y end
         end
      end
   end
   local empty = xmin > xmax
   if empty then xmin, xmax, ymin, ymax = 0, 1, log_y and 1 or 0, log_y and 10 or 1 end
   if o.x_max and o.x_max > xmin then xmax = o.x_max end
   if o.y_min and (not log_y or o.y_min > 0) then ymin = o.y_min end
   if o.y_max then ymax = o.y_max end
   if ymax < ymin then ymax = ymin end

   local W, H = o.width or 720, o.height or 420
   local legend_w = 0
   local tick_labels, seen_label = {}, {}
   for _, m in ipairs(marks) do
      if m.style == "tick" and m.label and not seen_label[m.label] then
         seen_label[m.label] = true
         tick_labels[#tick_labels + 1] = tostring(m.label)
      end
   end
   local named = #series > 1 or (series[1] and series[1].name ~= "series 1") or #tick_labels > 0
   if named then
      for _, s in ipairs(series) do legend_w = math.max(legend_w, text_width(s.name) + 40) end
      for _, l in ipairs(tick_labels) do legend_w = math.max(legend_w, text_width(l) + 40) end
   end
   local box = { x0 = 72, x1 = W - 20 - legend_w, y0 = o.title and 40 or 16, y1 = H - (o.x_label and 56 or 36) }

   local xticks, xa, xb, xstep = M.ticks(xmin, xmax, math.max(2, floor((box.x1 - box.x0) / 90)))
   if xmax > xmin and xb > xmax then -- the axis ends at the last x, not at the next nice tick
      xb = xmax
      while #xticks > 0 and xticks[#xticks] > xb + xstep * 1e-9 do xticks[#xticks] = nil end
   end
   local yticks, ya, yb, ystep
   if log_y then
      yticks, ya, yb = log_ticks(ymin, ymax)
   else
      yticks, ya, yb, ystep = M.ticks(ymin, ymax, 5)
   end
   local function px(x) return box.x0 + (x - xa) / (xb - xa) * (box.x1 - box.x0) end
   local function py(y)
      if log_y then return box.y1 - (log10(y) - log10(ya)) / (log10(yb) - log10(ya)) * (box.y1 - box.y0) end
      return box.y1 - (y - ya) / (yb - ya) * (box.y1 - box.y0)
   end
   local xt, yt = {}, {}
   for _, v in ipairs(xticks) do xt[#xt + 1] = { x = px(v), text = tick_text(v, xstep) } end
   for _, v in ipairs(yticks) do
      yt[#yt + 1] = { y = py(v), text = log_y and log_text(v) or tick_text(v, ystep) }
   end

   local out = header(W, H, o.title)
   frame(out, o, box, xt, yt)
   add(out, format('<clipPath id="plot"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath>',
                   box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0))
   add(out, '<g clip-path="url(#plot)">')
   for _, s in ipairs(series) do
      local segs, cur, npts = {}, {}, 0
      for k = 1, #s.xs do
         local x, y = s.xs[k], s.ys[k]
         if finite(x) and finite(y) and (not log_y or y > 0) then
            cur[#cur + 1] = format("%.2f,%.2f", px(x), py(y))
            npts = npts + 1
         elseif #cur > 0 then
            segs[#segs + 1] = cur
            cur = {}
         end
      end
      if #cur > 0 then segs[#segs + 1] = cur end
      local markers = o.markers
      if markers == nil then markers = npts <= 30 end
      for _, seg in ipairs(segs) do
         if #seg > 1 then
            add(out, format('<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"%s points="%s"/>',
                            s.color, s.dash and ' stroke-dasharray="6,4"' or "", concat(seg, " ")))
         end
         if markers or #seg == 1 then
            for _, p in ipairs(seg) do
               local cx, cy = p:match("([^,]+),(.+)")
               add(out, format('<circle cx="%s" cy="%s" r="3" fill="%s"/>', cx, cy, s.color))
            end
         end
      end
   end
   add(out, "</g>")
   local mark_color = "#555"
   for _, m in ipairs(marks) do
      if m.x >= xa and m.x <= xb then
         local x = px(m.x)
         if m.style == "tick" then
            add(out, format('<path d="M%.1f,%.1f l-5,8 h10 z" fill="%s"><title>%s</title></path>', x, box.y1 - 8,
                            mark_color, esc(m.label or "")))
         else
            add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4,3"/>',
                            x, box.y0, x, box.y1, mark_color))
            if m.label then
               add(out, format('<text x="%.1f" y="%.1f" font-size="10" fill="%s" transform="rotate(90 %.1f %.1f)">%s</text>',
                               x + 3, box.y0 + 4, mark_color, x + 3, box.y0 + 4, esc(m.label)))
            end
         end
      end
   end
   if empty then
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">no data</text>',
                      (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2))
   end
   if named then
      local lx, ly = box.x1 + 14, box.y0 + 6
      for i, s in ipairs(series) do
         local y = ly + (i - 1) * 20
         add(out, format('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"%s/>',
                         lx, y + 6, lx + 20, y + 6, s.color, s.dash and ' stroke-dasharray="6,4"' or ""))
         add(out, format('<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>', lx + 26, y + 6, esc(s.name)))
      end
      for i, l in ipairs(tick_labels) do
         local y = ly + (#series + i - 1) * 20
         add(out, format('<path d="M%.1f,%.1f l-5,8 h10 z" fill="%s"/>', lx + 10, y + 2, mark_color))
         add(out, format('<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>', lx + 26, y + 6, esc(l)))
      end
   end
   add(out, "</svg>")
   return concat(out, "\n") .. "\n"
end

-- histogram{title, counts = {...} (bars, labelled by labels = {...} or 1..n) | values = {...}
--           (numbers, binned into bins = 10 equal bins), x_label, y_label, color,
--           width = 720, height = 420} -> svg string
function M.histogram(o)
   check_opts(o, "viz.histogram")
   local counts, labels = o.counts, o.labels
   if counts == nil then
      if type(o.values) ~= "table" then
         error("viz.histogram: give counts = {...} (with optional labels) or values = {...}", 2)
      end
      local nb = o.bins or 10
      if type(nb) ~= "number" or nb < 1 or nb ~= floor(nb) then
         error("viz.histogram: option 'bins' must be a positive integer", 2)
      end
      local lo, hi = huge, -huge
      for _, v in ipairs(o.values) do
         if finite(v) then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
      if lo > hi then lo, hi = 0, 1 end
      if lo == hi then hi = lo + 1 end
      counts, labels = {}, {}
      local width = (hi - lo) / nb
      for b = 1, nb do
         counts[b] = 0
         labels[b] = format("%.3g", lo + (b - 0.5) * width)
      end
      for _, v in ipairs(o.values) do
         if finite(v) then
            local b = math.min(nb, floor((v - lo) / width) + 1)
            counts[b] = counts[b] + 1
         end
      end
   end
   if type(counts) ~= "table" then error("viz.histogram: option 'counts' must be a list of numbers", 2) end
   for i, c in ipairs(counts) do
      if not finite(c) or c < 0 then
         error(format("viz.histogram: counts[%d] must be a finite number >= 0, got %s", i, tostring(c)), 2)
      end
   end
   labels = labels or {}
   local n = #counts
   local W, H = o.width or 720, o.height or 420
   local box = { x0 = 72, x1 = W - 20, y0 = o.title and 40 or 16, y1 = H - (o.x_label and 56 or 36) }
   local cmax = 0
   for _, c in ipairs(counts) do cmax = math.max(cmax, c) end
   local yticks, ya, yb, ystep = M.ticks(0, cmax > 0 and cmax or 1, 5)
   local function py(y) return box.y1 - (y - ya) / (yb - ya) * (box.y1 - box.y0) end
   local slot = (box.x1 - box.x0) / math.max(n, 1)
   local xt, yt = {}, {}
   local every = math.max(1, math.ceil(n * 40 / (box.x1 - box.x0)))
   for i = 1, n do
      if (i - 1) % every == 0 then
         xt[#xt + 1] = { x = box.x0 + (i - 0.5) * slot, text = tostring(labels[i] or i), grid = false }
      end
   end
   for _, v in ipairs(yticks) do yt[#yt + 1] = { y = py(v), text = tick_text(v, ystep) } end
   local out = header(W, H, o.title)
   frame(out, o, box, xt, yt)
   local color = o.color or M.palette[1]
   local total = 0
   for _, c in ipairs(counts) do total = total + c end
   for i, c in ipairs(counts) do
      local x = box.x0 + (i - 1) * slot + slot * 0.1
      local y = py(c)
      add(out, format('<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s: %s</title></rect>',
                      x, y, slot * 0.8, box.y1 - y, color, esc(labels[i] or i), tick_text(c, 1)))
      if c > 0 and slot >= 18 then
         add(out, format('<text x="%.2f" y="%.2f" text-anchor="middle" font-size="11" fill="#333">%s</text>',
                         x + slot * 0.4, y - 4, tick_text(c, c % 1 == 0 and 1 or 0.01)))
      end
   end
   if total == 0 then
      add(out, format('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#888">no data</text>',
                      (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2))
   end
   add(out, "</svg>")
   return concat(out, "\n") .. "\n"
end

-- save(path, svg) -> true | nil, err
function M.save(path, svg)
   if type(path) ~= "string" or type(svg) ~= "string" then
      error("viz.save: expected (path, svg string)", 2)
   end
   local f, err = io.open(path, "wb")
   if not f then return nil, err end
   local ok, werr = f:write(svg)
   f:close()
   if not ok then return nil, werr end
   return true
end

-- ---- training runs --------------------------------------------------------------------------------

-- read_metrics(path) -> records (decoded lines of metrics.jsonl), skipped line count | nil, err
function M.read_metrics(path)
   local f, err = io.open(path, "rb")
   if not f then return nil, err end
   local recs, skipped = {}, 0
   for line in f:lines() do
      if line:match("%S") then
         local rec = require("hrm.fs").decode(line)
         if type(rec) == "table" and type(rec.step) == "number" then recs[#recs + 1] = rec
         else skipped = skipped + 1 end
      end
   end
   f:close()
   return recs, skipped
end

-- x_of(record) -> the record's x: its step by default.
local function metric_series(recs, split, set, key, label, x_of)
   local xs, ys = {}, {}
   for _, r in ipairs(recs) do
      if r.split == split and (set == nil or r.set == set) and type(r.metrics) == "table" then
         local v, x = r.metrics[key], x_of and x_of(r) or r.step
         if type(v) == "number" and type(x) == "number" then
            xs[#xs + 1], ys[#ys + 1] = x, v
         end
      end
   end
   if #xs == 0 then return nil end
   return { name = label, xs = xs, ys = ys }
end

local function file_name(s) return (s:gsub("[^%w_%-]", "_")) end

-- run_marks(records) -> marks, last step: curriculum changes (the run's event lines, such as a
-- curriculum's message) as line marks, checkpoints as x-axis ticks (last.hrm is written at every
-- evaluation and at the end; "checkpoint" records, where a run writes them, count too).
function M.run_marks(recs)
   local marks, last, ckpt = {}, -huge, {}
   for _, r in ipairs(recs) do
      if r.step > last then last = r.step end
      if r.split == "event" then
         marks[#marks + 1] = { x = r.step, label = tostring(r.message or "event"):sub(1, 40) }
      elseif (r.split == "eval" or r.split == "checkpoint") and not ckpt[r.step] then
         ckpt[r.step] = true
         marks[#marks + 1] = { x = r.step, label = "checkpoint", style = "tick" }
      end
   end
   if last > -huge and not ckpt[last] then
      marks[#marks + 1] = { x = last, label = "checkpoint", style = "tick" }
   end
   return marks, last > -huge and last or nil
end

-- plot_run(dir) -> list of written files | nil, err
-- From dir/metrics.jsonl: loss.svg (train losses, eval loss), accuracy.svg (token and exact
-- accuracy, train and eval), steps.svg (mean ACT steps in training, mean Q-halting step at
-- evaluation), lr.svg, and halting[_<set>].svg (the halting-step histogram of the last eval).
-- The curves' x-axis ends at the run's last step and carries its run_marks.
function M.plot_run(dir)
   if type(dir) ~= "string" then error("viz.plot_run: bad argument #1 (dir): expected a string", 2) end
   local recs, err = M.read_metrics(dir .. "/metrics.jsonl")
   if not recs then return nil, err end
   local sets, seen = {}, {}
   for _, r in ipairs(recs) do
      if r.split == "eval" and r.set and not seen[r.set] then
         seen[r.set] = true
         sets[#sets + 1] = r.set
      end
   end
   table.sort(sets)
   local marks, x_max = M.run_marks(recs)
   local written = {}
   local function emit(name, svg)
      local path = dir .. "/" .. name
      local ok, werr = M.save(path, svg)
      if not ok then error({ viz = werr }) end
      written[#written + 1] = path
   end
   local function collect(specs)
      local out = {}
      for _, s in ipairs(specs) do
         local ser = metric_series(recs, s[1], s[2], s[3], s[4])
         if ser then out[#out + 1] = ser end
      end
      return out
   end
   local ok, perr = pcall(function()
      local loss = { { "train", nil, "loss", "train loss" }, { "train", nil, "lm_loss", "train lm_loss" },
                     { "train", nil, "q_halt_loss", "train q_halt_loss" },
                     { "train", nil, "q_continue_loss", "train q_continue_loss" } }
      local acc = { { "train", nil, "accuracy", "train accuracy" },
                    { "train", nil, "exact_accuracy", "train exact accuracy" } }
      local steps = { { "train", nil, "steps", "train mean ACT steps" } }
      for _, set in ipairs(sets) do
         loss[#loss + 1] = { "eval", set, "loss", set .. " loss" }
         acc[#acc + 1] = { "eval", set, "accuracy", set .. " accuracy" }
         acc[#acc + 1] = { "eval", set, "exact_accuracy", set .. " exact accuracy" }
         steps[#steps + 1] = { "eval", set, "q_steps", set .. " mean Q-halting step" }
      end
      local ls = collect(loss)
      local positive = true
      for _, s in ipairs(ls) do for _, y in ipairs(s.ys) do if y <= 0 then positive = false end end end
      emit("loss.svg", M.line_chart{ title = "Losses", series = ls, x_label = "step", marks = marks, x_max = x_max, y_label = "loss",
                                     log_y = positive and #ls > 0 })
      emit("accuracy.svg", M.line_chart{ title = "Accuracy", series = collect(acc), x_label = "step", marks = marks, x_max = x_max,
                                         y_label = "accuracy", y_min = 0, y_max = 1 })
      emit("steps.svg", M.line_chart{ title = "Mean halting steps", series = collect(steps), x_label = "step", marks = marks, x_max = x_max,
                                      y_label = "ACT steps" })
      local lr = { xs = {}, ys = {}, name = "lr" }
      for _, r in ipairs(recs) do
         if r.split == "train" and type(r.lr) == "number" then lr.xs[#lr.xs + 1], lr.ys[#lr.ys + 1] = r.step, r.lr end
      end
      emit("lr.svg", M.line_chart{ title = "Learning rate", series = { lr }, x_label = "step", marks = marks, x_max = x_max, y_label = "lr" })
      for _, set in ipairs(sets) do
         local last
         for _, r in ipairs(recs) do
            if r.split == "eval" and r.set == set and type(r.halt_histogram) == "table" then last = r end
         end
         if last then
            local counts, labels = {}, {}
            for i, c in ipairs(last.halt_histogram) do counts[i], labels[i] = c, tostring(i) end
            local name = #sets == 1 and "halting.svg" or ("halting_" .. file_name(set) .. ".svg")
            emit(name, M.histogram{ title = string.format("Q-halting step, %s at step %d", set, last.step),
                                    counts = counts, labels = labels, x_label = "segment where q_halt > q_continue",
                                    y_label = "rows" })
         end
      end
   end)
   if not ok then
      if type(perr) == "table" and perr.viz then return nil, perr.viz end
      error(perr, 0)
   end
   return written
end

-- The x-axes compare_runs offers: name -> {label, function(record) -> x}.
local X_AXES = {
   step = { "step", function(r) return r.step end },
   cpu = { "training CPU minutes", function(r) return type(r.cpu) == "number" and r.cpu / 60 or nil end },
   time = { "wall minutes", function(r) return type(r.time) == "number" and r.time / 60 or nil end },
}

-- compare_runs(runs, {out = dir, x = "cpu" | "step" | "time", set, title}) -> files | nil, err
-- Several runs on one chart each: compare_exact.svg (evaluation exact accuracy), compare_accuracy.svg
-- (evaluation cell accuracy) and compare_loss.svg (train lm_loss), against training CPU minutes
-- (records' cpu), steps or wall minutes. runs: run directories, or {dir, label, color, dash} tables
-- (runs sharing a colour, one dashed, read as seeds of one model). set: the evaluation set (default:
-- each run's first). Files go into `out`.
function M.compare_runs(runs, o)
   if type(runs) ~= "table" or #runs == 0 then error("viz.compare_runs: bad argument #1: expected a list of runs", 2) end
   o = o or {}
   if type(o.out) ~= "string" then error("viz.compare_runs: option 'out' (the folder for the charts) is required", 2) end
   local axis = X_AXES[o.x or "cpu"]
   if not axis then error("viz.compare_runs: option 'x' must be \"cpu\", \"step\" or \"time\", got " .. tostring(o.x), 2) end
   local loaded = {}
   for i, run in ipairs(runs) do
      local r = type(run) == "string" and { dir = run } or run
      if type(r) ~= "table" or type(r.dir) ~= "string" then
         error(format("viz.compare_runs: run %d must be a directory or {dir = ..., label = ...}", i), 2)
      end
      local recs, err = M.read_metrics(r.dir .. "/metrics.jsonl")
      if not recs then return nil, err end
      local set = o.set
      if not set then
         for _, rec in ipairs(recs) do if rec.split == "eval" and rec.set then set = rec.set break end end
      end
      loaded[i] = { recs = recs, set = set, label = r.label or r.dir:gsub("/+$", ""):match("[^/]+$"),
                    color = r.color, dash = r.dash }
   end
   local function series(split, key)
      local out = {}
      for _, l in ipairs(loaded) do
         local s = metric_series(l.recs, split, split == "eval" and l.set or nil, key, l.label, axis[2])
         if s then s.color, s.dash = l.color, l.dash out[#out + 1] = s end
      end
      return out
   end
   local title = o.title and (o.title .. ": ") or ""
   local charts = {
      { "compare_exact.svg", { title = title .. "exact accuracy (evaluation)", series = series("eval", "exact_accuracy"),
                               y_label = "exact accuracy", y_min = 0, y_max = 1 } },
      { "compare_accuracy.svg", { title = title .. "cell accuracy (evaluation)", series = series("eval", "accuracy"),
                                  y_label = "cell accuracy", y_max = 1 } },
      { "compare_loss.svg", { title = title .. "train lm_loss", series = series("train", "lm_loss"), y_label = "lm_loss",
                              log_y = true } },
   }
   local written = {}
   for _, c in ipairs(charts) do
      c[2].x_label, c[2].width, c[2].markers = axis[1], 840, false
      local path = o.out:gsub("/+$", "") .. "/" .. c[1]
      local ok, err = M.save(path, M.line_chart(c[2]))
      if not ok then return nil, err end
      written[#written + 1] = path
   end
   return written
end

return M
