"""edge_pct.app: the PyQt6 camera app (live skeleton overlay). Not built yet; PyQt6 is imported only inside it."""
