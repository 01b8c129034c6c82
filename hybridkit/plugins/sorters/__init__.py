"""Sorter adapters: phy, KiloSort rez.mat, JRCLUST, YASS, and their shared checks (common)."""
