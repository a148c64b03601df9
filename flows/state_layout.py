"""The folders of the state folder (beside the database) that more than one module finds: each module that
keeps something there is given its folder by the refresh, and the prefetch (flows.state_prefetch) asks for
their files before the refresh reads them."""

LOADED_SOURCES = "loaded_sources"  # each source's parts as the last refresh took it in (flows.loaded_sources)
KEPT_LINKS = "kept_links"  # the decisions' sorted copy (flows.kept_links)
KEPT_RULES = "kept_rules"  # the last rulings (flows.kept_rules)
LONE_FACTS = "lone_facts"  # the facts of the test records with no decision (flows.lone_facts)
UNREGISTERED_PLACES = "unregistered_places"  # where those records are placed (flows.kept_unregistered)
ROSTER_DERIVED = "roster_derived"  # the roster's places and grid workers (flows.roster_derived)
