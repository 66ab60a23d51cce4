-- wrk script for etcd's v3 HTTP gateway. PODS_BENCH_MODE=put: each request puts a distinct
-- key <prefix><thread>-<n> with a value of PODS_BENCH_VSIZE bytes (/v3/kv/put).
-- PODS_BENCH_MODE=get: each request reads one of PODS_BENCH_KEYS keys <prefix><i>
-- (/v3/kv/range, linearizable: serializable is false by default).

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1 = math.floor(n / 262144) % 64
    local d2 = math.floor(n / 4096) % 64
    local d3 = math.floor(n / 64) % 64
    local d4 = n % 64
    out[#out + 1] = alphabet:sub(d1 + 1, d1 + 1) .. alphabet:sub(d2 + 1, d2 + 1) ..
      (b and alphabet:sub(d3 + 1, d3 + 1) or "=") .. (c and alphabet:sub(d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end

local mode = os.getenv("PODS_BENCH_MODE") or "put"
local prefix = os.getenv("PODS_BENCH_PREFIX") or "bench/"
local vsize = tonumber(os.getenv("PODS_BENCH_VSIZE") or "100")
local nkeys = tonumber(os.getenv("PODS_BENCH_KEYS") or "1000")
local value = b64(string.rep("v", vsize))
local threads = {}
local counter = 0
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  if mode == "put" then
    local key = b64(prefix .. tid .. "-" .. counter)
    return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. key .. '","value":"' .. value .. '"}')
  end
  local key = b64(prefix .. (counter % nkeys))
  return wrk.format(nil, "/v3/kv/range", nil, '{"key":"' .. key .. '"}')
end
