"""Redis 7.0 scripting's Lua side, on lupa's Lua 5.1 (as Redis embeds it).

- ``engine``: LuaEngine, the Lua state that runs scripts, and its callbacks.
- ``sandbox``: the scripting environment in Lua (read-only globals, wrapped builtins,
  error positions, the SCRIPT KILL hook, the entry points the engine calls).
- ``replies``: the conversions of replies between Redis and Lua, both halves.
- ``redislib``, ``bitlib``, ``structlib``, ``msgpacklib``, ``cjsonlib``: the libraries
  scripts see, each its Lua chunk and, where it has one, its Python side.
- ``sources``: a script's sha1 and shebang flags, and the cache of sources.
- ``tailcalls``: the bytecode patch that keeps error positions right.
- ``runtime``: which lupa module is the Lua.
"""
