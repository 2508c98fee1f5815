"""seqbench's own plugins, registered in every plugin manager like any other plugin.

They live apart from the contracts they implement (:mod:`seqbench.tasks`,
:mod:`seqbench.hookspecs`), so a contract module never imports the hooks that
fill it.
"""
