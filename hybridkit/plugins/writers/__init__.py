"""Writers: legacy (hybrid binary + tables), phy, NWB."""
