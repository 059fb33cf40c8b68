"""delrec-finetune: DELRec's stage 2, the LLM fine-tuned with AdaLoRA around a frozen soft prompt, one run per grid
point and seed. ``distilled = "delrec-distill:<experiment>"`` names the stage-1 experiment whose run of the same
seed gives the soft prompt; the ablations wo_sp, w_mcp and w_usp take none. ``model``, ``dataset`` and ``teacher``
are declared as for delrec-distill and must agree with the distill run's."""

from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Stage, register
from seqrec.experiments.stages.delrec_distill import ABLATION, TEACHER_STAGE, DELRecDistill
from seqrec.methods.delrec_options import FINETUNE_ABLATIONS, FinetuneStageConfig, FinetuneTraining
from seqrec.training.options import fields_of

DISTILLED = "distilled"
WITHOUT_DISTILLED = ("wo_sp", "w_mcp", "w_usp")  # the ablations whose soft prompt is none, text or random


@register
class DELRecFinetune(DELRecDistill):
    name = "delrec-finetune"
    makes = ()
    ablations = ("none", *FINETUNE_ABLATIONS)
    seeded = {"teacher": TEACHER_STAGE, DISTILLED: "delrec-distill"}

    def declared(self):
        return fields_of(FinetuneStageConfig, FinetuneTraining, exclude=("metric",))

    def parameters(self):
        return {DISTILLED} | set(self.declared())

    def check(self, plan, name):
        super().check(plan, name)
        for point in expand(plan.spec.experiments[name]):
            ablation = point.get(ABLATION, "none")
            if (ablation in WITHOUT_DISTILLED) == (point.get(DISTILLED) is not None):
                need = "takes no" if ablation in WITHOUT_DISTILLED else "needs a"
                raise SeqrecError(f"{plan.where(name, DISTILLED)}: ablation {ablation} {need} distilled soft prompt "
                                  "(\"delrec-distill:<experiment>\")")

    def resolve(self, arguments):
        from seqrec.methods.delrec import finetune_config

        return finetune_config(arguments.get(DISTILLED), arguments["model"], arguments["dataset"],
                               arguments["teacher"], arguments["seed"], self.options(arguments))

    lookup = Stage.lookup  # finetune() reuses any finished run of the config; there is no artifact to check

    def execute(self, arguments, experiment, resume):
        from seqrec.methods.delrec import finetune

        return finetune(arguments.get(DISTILLED), model=arguments["model"], dataset=arguments["dataset"],
                        teacher=arguments["teacher"], seed=arguments["seed"], resume=resume, experiment=experiment,
                        **self.options(arguments))
