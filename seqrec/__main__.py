from seqrec.cli import run

run()
