"""What a run is asked to do, read and checked before anything is created. A leaf: it imports
nothing from emul but emul.errors, and every layer may read it.

    scenario.py   scenario files → a checked, resolved Scenario (spec.py); fields.py the values
    vary.py       ``vary:`` matrices: one file, many structural groups
    sizes.py      256M, 4K, 64MiB …          topology.py  CPUs, roles (little, big, clusterN)
    profiles/     cost profiles (YAML) and their loader; costs.py the names of the costs
"""
