-- The 2600B's TSP object model over the emulator's Python state (loaded once per interpreter).
-- `_py` holds the Python callbacks; users never see it (it is a local upvalue after this chunk).
local py = _py
_py = nil

local function proxy(getter, setter, methods)
  return setmetatable({}, {
    __index = function(_, k)
      if methods and methods[k] ~= nil then return methods[k] end
      return getter(k)
    end,
    __newindex = function(_, k, v) setter(k, v) end,
  })
end

local function make_buffer(ch, name)
  local ref = ch .. ":" .. name
  local function column(field)
    return proxy(function(i) if i == "_bufname" then return ref elseif i == "_field" then return field end
                   return py.buffer_item(ref, field, i) end,
                 function() error(field .. " is read-only", 2) end)
  end
  local methods = {
    clear = function() py.buffer_clear(ref) end,
    readings = column("readings"), sourcevalues = column("sourcevalues"), timestamps = column("timestamps"),
    _bufname = ref,
  }
  return proxy(function(k)
                 if type(k) == "number" then return py.buffer_item(ref, "readings", k) end
                 return py.buffer_get(ref, k)
               end,
               function(k, v) py.buffer_set(ref, k, v) end, methods)
end

local function buffer_name(buf)
  if buf == nil then return nil end
  if type(buf) ~= "table" or buf._bufname == nil then error("bad argument (reading buffer expected)", 3) end
  return buf._bufname
end

local function make_smu(ch, label)
  local smu = {}
  local consts = {
    OUTPUT_DCAMPS = 0, OUTPUT_DCVOLTS = 1, OUTPUT_OFF = 0, OUTPUT_ON = 1, OUTPUT_HIGH_Z = 2,
    OUTPUT_NORMAL = 0, OUTPUT_ZERO = 1,
    AUTORANGE_OFF = 0, AUTORANGE_ON = 1, AUTORANGE_FOLLOW_LIMIT = 2,
    AUTOZERO_OFF = 0, AUTOZERO_ONCE = 1, AUTOZERO_AUTO = 2,
    SENSE_LOCAL = 0, SENSE_REMOTE = 1, SENSE_CALA = 3,
    ENABLE = 1, DISABLE = 0, ASYNC = 2, DELAY_OFF = 0, DELAY_AUTO = -1,
    FILTER_MOVING_AVG = 0, FILTER_REPEAT_AVG = 1, FILTER_MEDIAN = 2,
    SOURCE_IDLE = 0, SOURCE_HOLD = 1, SOURCE_DCAMPS = 0, SOURCE_DCVOLTS = 1,
  }
  for k, v in pairs(consts) do smu[k] = v end
  smu.sense = 0  -- SENSE_LOCAL
  smu.nvbuffer1 = make_buffer(ch, "nvbuffer1")
  smu.nvbuffer2 = make_buffer(ch, "nvbuffer2")
  local measure_methods = {
    i = function(b) return py.measure(ch, "i", buffer_name(b)) end,
    v = function(b) return py.measure(ch, "v", buffer_name(b)) end,
    r = function(b) return py.measure(ch, "r", buffer_name(b)) end,
    p = function(b) return py.measure(ch, "p", buffer_name(b)) end,
    iv = function(bi, bv) return py.measure(ch, "iv", buffer_name(bi), buffer_name(bv)) end,
  }
  smu.source = proxy(function(k) return py.get(ch, "source", k) end,
                     function(k, v) py.set(ch, "source", k, v) end)
  smu.measure = proxy(function(k) return py.get(ch, "measure", k) end,
                      function(k, v) py.set(ch, "measure", k, v) end, measure_methods)
  local trig_source = proxy(function(k) return py.get(ch, "trigger.source", k) end,
                            function(k, v) py.set(ch, "trigger.source", k, v) end, {
    linearv = function(a, b, n) py.trigger_sweep(ch, "v", "lin", a, b, n) end,
    lineari = function(a, b, n) py.trigger_sweep(ch, "i", "lin", a, b, n) end,
    logv = function(a, b, n) py.trigger_sweep(ch, "v", "log", a, b, n) end,
    logi = function(a, b, n) py.trigger_sweep(ch, "i", "log", a, b, n) end,
    listv = function(t) py.trigger_list(ch, "v", t) end,
    listi = function(t) py.trigger_list(ch, "i", t) end,
  })
  local trig_measure = proxy(function(k) return py.get(ch, "trigger.measure", k) end,
                             function(k, v) py.set(ch, "trigger.measure", k, v) end, {
    i = function(b) py.trigger_measure(ch, "i", buffer_name(b)) end,
    v = function(b) py.trigger_measure(ch, "v", buffer_name(b)) end,
    r = function(b) py.trigger_measure(ch, "r", buffer_name(b)) end,
    p = function(b) py.trigger_measure(ch, "p", buffer_name(b)) end,
    iv = function(bi, bv) py.trigger_measure(ch, "iv", buffer_name(bi), buffer_name(bv)) end,
  })
  local function sub(path)
    return proxy(function(k) return py.get(ch, path, k) end, function(k, v) py.set(ch, path, k, v) end)
  end
  smu.trigger = proxy(function(k) return py.get(ch, "trigger", k) end,
                      function(k, v) py.set(ch, "trigger", k, v) end, {
    source = trig_source, measure = trig_measure,
    arm = sub("trigger.arm"), endpulse = sub("trigger.endpulse"), endsweep = sub("trigger.endsweep"),
    initiate = function() py.trigger_initiate(ch) end,
  })
  smu.reset = function() py.smu_reset(ch) end
  smu.abort = function() end
  smu.makebuffer = function(n)
    local name = py.make_buffer(ch, n)
    return make_buffer(ch, name)
  end
  return smu
end

smua = make_smu(0, "smua")
smub = make_smu(1, "smub")

print = function(...)
  local n = select("#", ...)
  local parts = {}
  for k = 1, n do parts[k] = py.format((select(k, ...))) end
  py.output(table.concat(parts, "\t"))
end

printnumber = function(...)
  local n = select("#", ...)
  local parts = {}
  for k = 1, n do parts[k] = py.format(tonumber((select(k, ...)))) end
  py.output(table.concat(parts, ", "))
end

printbuffer = function(first, last, ...)
  local refs = {}
  for k = 1, select("#", ...) do
    local b = select(k, ...)
    if type(b) ~= "table" or b._bufname == nil then error("bad argument #" .. (k + 2) .. " to 'printbuffer' (reading buffer expected)", 2) end
    refs[#refs + 1] = b._bufname .. "|" .. (b._field or "readings")
  end
  py.printbuffer(first, last, table.concat(refs, ","))
end

errorqueue = proxy(function(k) if k == "count" then return py.error_count() end end,
                   function() error("errorqueue is read-only", 2) end, {
  next = function() return py.error_next() end,
  clear = function() py.error_clear() end,
})

local function register(path)
  return proxy(function(k) return py.status_get(path, k) end, function(k, v) py.status_set(path, k, v) end)
end

status = proxy(function(k) return py.status_get("", k) end, function(k, v) py.status_set("", k, v) end, {
  reset = function() py.status_reset() end,
  standard = register("standard"),
  operation = register("operation"),
  questionable = register("questionable"),
  measurement = proxy(function(k) return py.status_get("measurement", k) end,
                      function(k, v) py.status_set("measurement", k, v) end, {
    instrument = proxy(function(k) return py.status_get("measurement.instrument", k) end,
                       function(k, v) py.status_set("measurement.instrument", k, v) end, {
      smua = register("measurement.instrument.smua"),
      smub = register("measurement.instrument.smub"),
    }),
  }),
})

localnode = proxy(function(k) return py.node_get(k) end, function(k, v) py.node_set(k, v) end, {
  reset = function() py.reset_all() end,
})
format = proxy(function(k) return py.format_get(k) end, function(k, v) py.format_set(k, v) end)
timer = { reset = function() py.timer_reset() end, measure = { t = function() return py.timer_t() end } }
beeper = { beep = function() end, enable = 1 }
display = { clear = function() end, setcursor = function() end, settext = function() end, screen = 0 }

reset = function() py.reset_all() end
waitcomplete = function() end
opc = function() py.opc() end
delay = function(s) py.delay(s) end

-- Factory scripts of the 2600B (KIGeneral): linear and list sweeps into nvbuffer1.
local function sweep(smu, func_v, values, stime, points)
  smu.source.func = func_v and smu.OUTPUT_DCVOLTS or smu.OUTPUT_DCAMPS
  if func_v then smu.source.levelv = values(1) else smu.source.leveli = values(1) end
  smu.nvbuffer1.clear()
  smu.source.output = smu.OUTPUT_ON
  for k = 1, points do
    if func_v then smu.source.levelv = values(k) else smu.source.leveli = values(k) end
    delay(stime)
    if func_v then smu.measure.i(smu.nvbuffer1) else smu.measure.v(smu.nvbuffer1) end
  end
  smu.source.output = smu.OUTPUT_OFF
end

local function linear(a, b, n)
  return function(k) if n == 1 then return a end return a + (k - 1) * (b - a) / (n - 1) end
end

local function listed(t)
  return function(k)
    local v = t[k]
    if v == nil then error("bad argument (list shorter than points)", 4) end
    return v
  end
end

SweepVLinMeasureI = function(smu, startv, stopv, stime, points) sweep(smu, true, linear(startv, stopv, points), stime, points) end
SweepILinMeasureV = function(smu, starti, stopi, stime, points) sweep(smu, false, linear(starti, stopi, points), stime, points) end
SweepVListMeasureI = function(smu, vlist, stime, points) sweep(smu, true, listed(vlist), stime, points) end
SweepIListMeasureV = function(smu, ilist, stime, points) sweep(smu, false, listed(ilist), stime, points) end
