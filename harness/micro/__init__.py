"""Micro scale: the ``apollo3_micro`` task hooks (:mod:`.task`), scripted demonstrations (:mod:`.demos`)
and the deterministic CPU build of the ``micro`` policy (:mod:`.build`). See ``docs/micro.md``.

Nothing heavy is imported here; torch and transformers load inside :mod:`.build` functions.
"""
