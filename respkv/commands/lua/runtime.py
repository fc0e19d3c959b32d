"""The Lua that runs scripts: lupa's Lua 5.1, the version Redis embeds."""

from __future__ import annotations

try:  # lupa bundles Lua 5.1 as lupa.lua51
    from lupa import lua51 as lupa
except ImportError:  # pragma: no cover - a lupa build without 5.1
    import lupa

LUA_RUNTIME = lupa.__name__
