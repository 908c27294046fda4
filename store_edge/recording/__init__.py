"""MCAP recordings: every message on its topic with its JSON Schema, plus truth channels."""

from store_edge.recording.mcap_io import RecordedMessage, RecordingWriter, read_attachment, read_messages

__all__ = ["RecordedMessage", "RecordingWriter", "read_attachment", "read_messages"]
