"""Reading a loop's files into immutable values.

What lives here: the plan, metrics and summary models (:mod:`.models`), their
parsers (:mod:`.parsing`, bytes in, a value or ``ParseError`` out), the
incremental index of the progress log (:mod:`.progress`), the file cache that
keeps the last good reading (:mod:`.filecache`) and the map of one project's
files and runs (:mod:`.project`). Plain blocking Python over the filesystem:
this package never imports Twisted, nor anything of loopdash above it; every
other layer may import it.
"""
