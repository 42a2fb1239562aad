from pipeline.train.progress import Progress


def test_a_rewind_goes_back_in_steps_and_keeps_what_the_rollback_changed():
    progress = Progress(step=90, images_seen=5760, d_steps=180, lr_scale=0.1, interventions=2)
    progress.rewind({"step": 50, "images_seen": 3200, "d_steps": 70}, n_dis=2)
    assert progress == Progress(step=50, images_seen=3200, d_steps=70, lr_scale=0.1,
                                interventions=2)  # fmt: skip


def test_a_resume_restores_every_counter_and_reads_older_checkpoints():
    saved = Progress(step=50, images_seen=3200, d_steps=70, lr_scale=0.5, interventions=1)
    assert Progress.resumed(saved.counters(), n_dis=2, interventions=1) == saved
    older = {"step": 50, "images_seen": 3200}  # before D's steps were saved
    assert Progress.resumed(older, n_dis=2, interventions=0).d_steps == 100
