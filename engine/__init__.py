"""onhand's domain: one inventory pool shared by every sales channel.

The pool's state lives in Redis and changes only through the Lua scripts in
``lua/``; :class:`engine.store.Store` is the one module that runs them.
"""
