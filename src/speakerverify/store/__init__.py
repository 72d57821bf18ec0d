"""The speaker store: enrolled speakers in a SQLite file or a PostgreSQL database (see :mod:`.speaker_store`).

* :mod:`.db` -- the engine interface and the SQLite engine: schema, connections, transactions;
* :mod:`.postgres` -- the PostgreSQL engine (psycopg 3), with LISTEN/NOTIFY for replicas;
* :mod:`.engines` -- which engine a location means (`open_database`);
* :mod:`.codecs` -- embeddings and enrollment audio as stored;
* :mod:`.enrollment` -- the enrollment policy (names, duplicates, outliers, averaging), without a database;
* :mod:`.gallery` and :mod:`.index` -- the search gallery and its nearest-speaker indexes;
* :mod:`.keys` -- the service's API keys, kept in the same file;
* :mod:`.crypto` -- encryption at rest (the store key, AES-GCM blobs, the key check);
* :mod:`.audit` -- the audit log (records, ``--since``);
* :mod:`.results` -- what enrollment, identification and re-embedding return.
"""

from speakerverify.errors import SpeakerNotFound
from speakerverify.store.codecs import decode_flac, encode_flac
from speakerverify.store.db import SCHEMA_VERSION, default_store_path
from speakerverify.store.enrollment import check_name, find_outliers, speaker_embedding
from speakerverify.store.results import Candidate, EnrollResult, IdentifyResult, ReembedResult
from speakerverify.store.speaker_store import SHORTLIST, SpeakerStore

__all__ = ["SCHEMA_VERSION", "SHORTLIST", "Candidate", "EnrollResult", "IdentifyResult", "ReembedResult",
           "SpeakerNotFound", "SpeakerStore", "check_name", "decode_flac", "default_store_path", "encode_flac",
           "find_outliers", "speaker_embedding"]
