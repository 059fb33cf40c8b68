"""The conventional sequential recommenders, by name: (model class, its config dataclass)."""

from seqrec.recsys.models.bert4rec import BERT4Rec, BERT4RecConfig
from seqrec.recsys.models.caser import Caser, CaserConfig
from seqrec.recsys.models.gru4rec import GRU4Rec, GRU4RecConfig
from seqrec.recsys.models.sasrec import SASRec, SASRecConfig

RECOMMENDERS = {
    "sasrec": (SASRec, SASRecConfig),
    "gru4rec": (GRU4Rec, GRU4RecConfig),
    "caser": (Caser, CaserConfig),
    "bert4rec": (BERT4Rec, BERT4RecConfig),
}
