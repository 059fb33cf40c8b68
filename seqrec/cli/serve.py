"""`seqrec serve`: an OpenAI-compatible server for a registry model or a trained student."""

from typing import Optional

import typer


def serve(
    model: str = typer.Option(..., "--model", "-m", help="A registry alias, run:ID (a trained model) or a model "
                              "folder."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    served_name: Optional[str] = typer.Option(None, "--served-name", help="The model name clients send "
                                              "(default: --model as given)."),
    dtype: str = typer.Option("auto", help="auto (bf16 where the device has it), float32, bfloat16 or float16."),
    max_batch: int = typer.Option(8, min=1, help="Most concurrent requests generated in one batch."),
) -> None:
    """Serve a model over HTTP with OpenAI's API (/v1/models, /v1/chat/completions, /v1/completions)."""
    from seqrec.llm.serve import serve as serve_model

    serve_model(model, host=host, port=port, served_name=served_name, dtype=dtype, max_batch=max_batch)
