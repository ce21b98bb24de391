"""edge_pct.app: the PyQt6 camera app (`edge-pct app`): live skeleton overlay on a camera, file or stream.

Files: `settings.py` (what is remembered, QSettings), `camera_worker.py` (capture + inference on a QThread),
`recorder.py` (snapshots, recordings), `video_view.py` (painting), `settings_panel.py` (the form),
`main_window.py` (the window), `__main__.py` (start, headless mode). Importing this package imports nothing;
PyQt6 is imported by those modules only, so `import edge_pct` and `edge-pct --help` work without the `app` extra.
"""
