/**
 * Local training and evaluation of the suffix, and one local round, as src/fmfl/edge_client/local_training.py:
 * the same batches (numpy's permutation with seed ``cfg.seed * 1000 + epoch``), the same skip rule for batches
 * below the minimum (1 for a classifier, 2 for the contrastive loss), a fresh optimizer each round, and the delta
 * computed in float64 and rounded to float32.
 * @module device/local_training
 */

/** @typedef {import("./index.js").LocalTrainConfig} LocalTrainConfig */
/** @typedef {import("./index.js").TrainStats} TrainStats */

/**
 * A round's training terms from a RoundTask, exactly as EdgeDevice.run_round derives them
 * (seed = task.seed + task.round; a BigInt, as task seeds go up to 2**53).
 * @param {import("./index.js").RoundTaskLike} task
 * @returns {LocalTrainConfig}
 */
export function roundConfig(task) {
  const steps = task.local_steps ?? null, epochs = task.local_epochs ?? null;
  if ((steps === null) === (epochs === null)) throw new RangeError("give exactly one of local_steps and local_epochs");
  if (!(Number.isInteger(task.batch_size) && task.batch_size >= 1) || !(task.lr > 0 && task.lr < 10)) {
    throw new RangeError(`batch_size must be >= 1 and lr in (0, 10): ${task.batch_size}, ${task.lr}`);
  }
  return { batch_size: task.batch_size, lr: task.lr, local_epochs: epochs, local_steps: steps, seed: BigInt(task.seed) + BigInt(task.round) };
}

/** @param {import("./trainer.js").WebTrainer} trainer */
const minBatch = (trainer) => (trainer.inputNames.includes("labels") ? 1 : 2);

/**
 * @param {import("./trainer.js").WebTrainer} trainer
 * @param {import("./dataset.js").Batch} batch
 */
function feeds(trainer, batch) {
  const f = { ...batch.inputs };
  if (trainer.inputNames.includes("labels")) {
    if (batch.labels === null) throw new RangeError("this bundle trains a classifier: the local data needs labels");
    f.labels = { data: batch.labels, shape: [batch.labels.length] };
  }
  return f;
}

/**
 * @param {import("./trainer.js").WebTrainer} trainer
 * @param {import("./dataset.js").LocalDataset} data
 * @param {LocalTrainConfig} cfg
 * @returns {Promise<TrainStats>}
 */
export async function trainLocally(trainer, data, cfg) {
  if (data.length < minBatch(trainer)) throw new RangeError(`not enough local training samples (${data.length})`);
  trainer.resetOptimizer();
  trainer.setLearningRate(cfg.lr);
  const start = performance.now();
  /** @type {number[]} */
  const losses = [], stepMs = [];
  let samples = 0, epoch = 0, firstStepAt = NaN;
  const enough = () => cfg.local_steps !== null && losses.length >= cfg.local_steps;
  for (;;) {
    for (const batch of data.batches(cfg.batch_size, BigInt(cfg.seed) * 1000n + BigInt(epoch), true)) {
      if (batch.indices.length < minBatch(trainer)) continue;
      const t0 = performance.now();
      losses.push(await trainer.trainStep(feeds(trainer, batch)));
      stepMs.push(performance.now() - t0);
      if (stepMs.length === 1) firstStepAt = performance.now();
      samples += batch.indices.length;
      if (enough()) break;
    }
    epoch += 1;
    if (enough()) break;
    if (cfg.local_epochs !== null && epoch >= cfg.local_epochs) break;
  }
  const mean = losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : NaN;
  if (!Number.isFinite(mean)) throw new RangeError(`local training diverged (mean loss ${mean}); lower the learning rate`);
  return { steps: losses.length, samples, mean_loss: mean, seconds: (performance.now() - start) / 1000, step_ms: stepMs,
    first_step_at_ms: firstStepAt };
}

/**
 * Mean loss and accuracy (classification) or in-batch retrieval accuracy (contrastive); {} with too few samples.
 * @param {import("./trainer.js").WebTrainer} trainer
 * @param {import("./dataset.js").LocalDataset} data
 * @param {number} batchSize
 * @returns {Promise<Record<string, number>>}
 */
export async function evaluate(trainer, data, batchSize = 64) {
  if (data.length < minBatch(trainer)) return {};
  let totalLoss = 0, correct = 0, seen = 0;
  for (const batch of data.batches(batchSize, 0, false)) {
    const n = batch.indices.length;
    if (n < minBatch(trainer)) continue;
    const { loss, output, dims } = await trainer.evalStep(feeds(trainer, batch));
    totalLoss += loss * n;
    const classes = dims[1];
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (output[i * classes + c] > output[i * classes + best]) best = c;
      const target = batch.labels !== null && trainer.inputNames.includes("labels") ? Number(batch.labels[i]) : i;
      if (best === target) correct += 1;
    }
    seen += n;
  }
  return { eval_loss: totalLoss / seen, eval_accuracy: correct / seen, eval_samples: seen };
}

/**
 * Train from ``weights`` on ``data``; the delta is taken in float64 and rounded to float32 (tiny steps survive).
 * @param {import("./trainer.js").WebTrainer} trainer
 * @param {Float32Array} weights
 * @param {import("./dataset.js").LocalDataset} data
 * @param {LocalTrainConfig} cfg
 * @returns {Promise<import("./index.js").LocalRoundResult>}
 */
export async function localRound(trainer, weights, data, cfg) {
  trainer.setWeights(weights);
  const stats = await trainLocally(trainer, data, cfg);
  const trained = trainer.getWeights();
  const delta = new Float32Array(trained.length);
  for (let i = 0; i < delta.length; i++) delta[i] = trained[i] - weights[i];
  return { trained, delta, stats };
}
