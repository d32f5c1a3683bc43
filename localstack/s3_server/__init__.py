"""A small, strictly consistent, file-backed S3 server: the local stack's durable store for tansu.

`FileStore` (store.py) owns the files and the consistency rules; `create_app` (app.py) speaks the
S3 subset tansu's object_store client uses; `python -m localstack.s3_server` runs it with
`S3ServerSettings.from_env`.
"""

from localstack.s3_server.settings import S3ServerSettings
from localstack.s3_server.store import FileStore, ObjectInfo, PreconditionFailed

__all__ = ["FileStore", "ObjectInfo", "PreconditionFailed", "S3ServerSettings"]
