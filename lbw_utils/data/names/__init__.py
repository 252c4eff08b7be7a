"""Name -> nationality data: the data file, character encoding, splits and batches.

The data is the draft paper author's public set: a pickled dict
``nationality -> list of 2,000 lowercase full names`` for 42 nationalities,
from ``name-ethnicity-classifier/nec-experiments`` at a fixed commit. A user's
own ``name,nationality`` CSV file can stand in for it.

Modules: ``files`` (where the file is published, download, checksum, safe reading, CSV),
``encoding`` (alphabet, preprocessing, codes), ``dataset`` (splits, :class:`NameData`,
:func:`load_names`, the task's registration as the dataset ``"names"``). The models, and a trained
model's top nationalities for typed names (``predict_nationalities``), live in
:mod:`lbw_utils.models.recurrent`.
"""

from lbw_utils.data.names.dataset import PAPER_CLASSES, SPLITS, NameData, load_names
from lbw_utils.data.names.encoding import (
    ALPHABET, PAD_INDEX, UNKNOWN_CHAR, UNKNOWN_INDEX, VOCAB_SIZE, decode_name, encode_batch, encode_name,
    normalise_name,
)
from lbw_utils.data.names.files import (
    NAMES_COMMIT, NAMES_FILE, NAMES_REPO_PATH, NAMES_REPOSITORY, NAMES_SHA256, NAMES_URL, NamesFileContentError,
    NamesFileMissingError, ensure_names_file, names_file_path, read_names_csv, read_names_pickle,
)
