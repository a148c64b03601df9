"""Imported last by multiprocessing's fork server (flows.loading), once the modules its children need are in:
what those imports made is frozen out of the collector's passes in every child forked from it."""

from flows.collector import freeze_imports

freeze_imports()
