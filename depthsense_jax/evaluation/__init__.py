"""Zero-shot evaluation on the field's benchmark datasets: the protocol (`protocol`),
other tools' saved predictions (`predictions`) and the benchmark run (`benchmark`)."""
