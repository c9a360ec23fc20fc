-- luacheck for the scripts Redis runs (lua/*.lua put together by lua/generate.py --out; `make lua-check`).
-- Redis runs them in Lua 5.1 with these globals.
std = "lua51"
read_globals = {"redis", "KEYS", "ARGV", "cjson", "cmsgpack", "bit", "struct"}
max_line_length = 120
