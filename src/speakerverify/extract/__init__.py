"""Batch extraction at scale: ``speakerverify embed --list FILES.txt --out DIR``, unchanged under
``torchrun`` (any number of processes and nodes), then ``embed --merge DIR --out FILE``.

* :mod:`.filelist` -- the list of recordings (``PATH`` or ``KEY PATH`` lines) and its hash;
* :mod:`.shards` -- the fixed-size shards, which rank takes which, each shard's files and manifest;
* :mod:`.run` -- one rank's share: embed its unfinished shards, write each atomically;
* :mod:`.merge` -- join every shard, in list order, into one ``.npz`` or Kaldi ``ark/scp``.

No process group is needed: a rank's shards follow from RANK and WORLD_SIZE alone, and a shard is
finished exactly when its manifest exists, so any later run (with any number of processes) resumes.
"""
