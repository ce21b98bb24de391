"""Streaming pose estimation: video sources, detection, tracking, filtering and overlay."""
