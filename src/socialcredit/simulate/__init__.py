"""The simulated society the system runs on: synthetic citizens only, generated with arrays.

No real population may be scored, so everything here is invented: resident IDs, names, households,
contacts and avatars. The simulator is a client of the engine (SPEC §4) and is never imported by
the core. At scale nothing is generated one Python call per citizen.
"""

from socialcredit.simulate.population import Population, generate_population

__all__ = ["Population", "generate_population"]
