"""Fine-tune a causal LM on ARC tasks.

    python train.py                                   # SmolLM2-135M + LoRA on ARC-1 training, on CPU
    python train.py debug=smoke                       # minutes on CPU
    python train.py model=qwen2-1.5b lora.r=128       # any group option or key
    python train.py -m lora.r=16,32,64,128 encoder=minimal,grid_shape_row_number
    python train.py -m hparams_search=lr_lora_r evaluation.enabled=true objective.metric=eval/pass_2 \
        objective.direction=maximize                  # an Optuna study of an eval metric (returns it)
"""
import logging

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli, console

log = logging.getLogger("train")


@cli.main(__file__, "train")
def main(cfg: DictConfig) -> float:
    # imported here, not at the top: Lightning takes ~10 s to import, and a bad override or `--cfg job` should
    # answer at once
    from arc_exp.data.trained_outputs import TrainedOutputs, check_scoring, untrained_tasks
    from arc_exp.model.tokenizer import wrap_tokenizer
    from arc_exp.tracking import references
    from arc_exp.tracking.runs import choice_tags
    from arc_exp.training import distributed, recipe as training
    from arc_exp.training.callbacks import training_callbacks
    from arc_exp.training.module import ARCLitModule
    from arc_exp.training.objective import Objective

    hydra_cfg = HydraConfig.get()
    output_dir, overrides = hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task)
    if cfg.data.task_of_interest_steps is not None:  # before the config is logged: params show the steps run
        cfg.trainer.max_steps = training.steps_for_task_of_interest(
            OmegaConf.to_container(cfg.data.train, resolve=True), cfg.data.task_of_interest_steps)
        log.info("data.task_of_interest_steps=%d: trainer.max_steps=%d", cfg.data.task_of_interest_steps,
                 cfg.trainer.max_steps)
    # adapter_path=run:<key>:<value>/... (run.py's references): the last checkpoint of the one run it names
    cfg.adapter_path = references.resolve(cfg.adapter_path, cfg.logger.get("tracking_uri"), "adapter_path",
                                          checkpoint=True)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    training.seed_everything(cfg.seed)
    objective = Objective(**resolved["objective"])  # what this returns: a sweep's figure, checked before training
    objective.check(cfg.evaluation.enabled, training.count_qa_settings(cfg.evaluation.count_qa) is not None)

    # devices and strategy checked before anything loads; under DDP the other processes start in this run folder
    distributed.setup_processes(resolved["trainer"], output_dir, overrides)
    instantiate(cfg.lora).check_device()  # lora=qlora without a GPU
    checkpoint = training.resume_checkpoint(cfg.resume)
    training.check_resume(checkpoint, resolved, cfg.trainer.max_steps)  # not finished, nor composed otherwise
    encoder, policy = instantiate(cfg.encoder), instantiate(cfg.augmentation)
    spec = instantiate(cfg.model)
    tokenizer = training.build_tokenizer(spec)
    vocabulary = training.build_vocabulary(cfg, tokenizer, encoder)  # model.reduce_vocab=true, else None
    tokenizer = wrap_tokenizer(tokenizer, vocabulary)  # reduced ids; checkpoints get vocabulary.json
    # the data before the model: a max_seq_len that no task fits fails before a large model spends time loading
    datamodule = training.build_datamodule(cfg.data, encoder, tokenizer, policy, cfg.seed)
    datamodule.set_start_batch(training.batches_done(checkpoint))
    # the examples whose outputs this run (and the adapter it continues) trains on: the evaluation below refuses to
    # score them, and every checkpoint carries the record for the evaluations of it
    trained = TrainedOutputs.of_datasets(datamodule.train_stream.datasets, output_dir).continued_from(cfg.adapter_path)
    val_trained = training.check_validation(trained, datamodule.val_tasks)  # a val loss on trained outputs: warned
    evaluation = training.prepare_evaluation(cfg, encoder, policy) if cfg.evaluation.enabled else None
    scored_trained = check_scoring(trained, evaluation[2], "this run (data.train and adapter_path)",
                                   cfg.evaluation.allow_trained_outputs, cfg.evaluation.skip_trained_tasks) \
        if evaluation else []
    if scored_trained and cfg.evaluation.skip_trained_tasks:
        evaluation = (*evaluation[:2], untrained_tasks(evaluation[2], scored_trained))
    adapter_settings = instantiate(cfg.lora)
    model = training.build_model(spec, adapter_settings, cfg.adapter_path, cfg.seed, vocabulary)
    module = ARCLitModule(model, cfg.learning_rate, cfg.weight_decay, instantiate(cfg.scheduler),
                          total_steps=cfg.trainer.max_steps)

    tags = {"sweep_id": hydra_cfg.sweep.dir if hydra_cfg.mode.name == "MULTIRUN" else "", "model": cfg.model.name,
            **choice_tags(hydra_cfg.runtime.choices, resolved), **training.trained_outputs_tags(scored_trained, cfg.evaluation.skip_trained_tasks, val_trained)}
    checkpoints, adapters = training_callbacks(cfg.callbacks.checkpoint_every_n_steps, tokenizer, output_dir, resolved,
                                               trained)
    callbacks = [checkpoints, adapters, *training.evaluation_callbacks(cfg, model, tokenizer, lambda: run, encoder)]
    trainer = training.build_trainer(cfg.trainer, None, callbacks, output_dir, model)
    # under DDP every process runs this recipe (trainer=ddp_cpu: 2); process 0 alone writes files and the MLflow run
    run = training.start_run(resolved["logger"], resolved, overrides, output_dir, cfg.project_root, tags,
                             [trained.save(output_dir)]) if trainer.is_global_zero else None
    trainer.logger = run and run.lightning_logger()
    if trainer.is_global_zero:
        cli.run_started(run and run.run_id, cfg.logger.get("tracking_uri"))
    if run is not None and cfg.lora.method == "lora":  # lora.alpha null follows r: log what it became
        run.log_params({"lora.effective_alpha": adapter_settings.alpha, "lora.scale": adapter_settings.scale})

    status = "FAILED"
    try:
        before = training.evaluate_before_training(model, tokenizer, cfg, evaluation, output_dir, run,
                                                  encoder) \
            if checkpoint is None and trainer.is_global_zero else {}
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint)
        metrics = training.finish_run(run, trainer, datamodule, adapters,
                                      training.logs_adapter(cfg.callbacks.log_adapter, cfg.lora.method))
        if not trainer.is_global_zero:  # the evaluations after training are process 0's (a sweep reads its value)
            return metrics.get(objective.metric, float("nan"))
        metrics.update(training.evaluate_trained(model, tokenizer, cfg, evaluation, output_dir, run,
                                                 trainer.global_step, before, encoder))
        status = "FINISHED"
    finally:
        if run is not None:
            run.finish(status)
    log.info("final metrics:\n%s", console.metrics_table(metrics))
    return objective.value(metrics)


if __name__ == "__main__":
    main()
