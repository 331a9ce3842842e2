"""Emitters: one per kind of output, each a small subclass of `base.Emitter`.

A preset names its emitter by module name (`emitter = "server"` is
`nitro_build.build.emitters.server.Emitter`) or as "pkg.module:Class".
"""
