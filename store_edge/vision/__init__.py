"""The vision path: camera frames to store-level shopper tracks (issue #6).

Domain parts, pure: `floor` (where a detected person stands), `store_tracker` (per-camera tracks merged
into one track per shopper), `metrics` (MOTA, IDF1 on the floor). The detector and the worker that
runs it on frames (ultralytics, OpenCV, MQTT) are in `detector` and `worker`, imported on demand.
"""
