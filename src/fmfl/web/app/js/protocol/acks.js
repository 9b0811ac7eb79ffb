/**
 * What a device does after each Ack (docs/protocol.md, section 5 "Ack" and section 8, "What a device does
 * after a negative Ack"). Every Ack, accepted or not, removes the update from the outbox and is final: the
 * device never sends that update again. The `next` field says what to do afterwards.
 */

/**
 * @typedef {"none"|"wait_for_task"|"follow_newest_run"|"take_round_model"|"send_hello"|"fix_device"|"reprovision_bundle"|"reprovision_key"} NextAction
 *
 * @typedef {object} AckAction
 * @property {boolean} dropFromOutbox always true: every Ack is final for its update
 * @property {NextAction} next
 * @property {string} why the reason in words, for the page and the log
 */

/** @type {Record<string, [NextAction, string]>} */
const ACTIONS = {
  client_mismatch: ["fix_device", "the update's client_id is not the topic's"],
  wrong_run: ["follow_newest_run", "the update names another run"],
  wrong_federation: ["reprovision_bundle", "another federation than the gateway's"],
  wrong_bundle: ["reprovision_bundle", "another bundle than the gateway's: install the gateway's bundle"],
  no_open_round: ["wait_for_task", "no round is open"],
  wrong_round: ["fix_device", "a round that is not open yet (the device trained a task it should not have)"],
  stale_round: ["wait_for_task", "the round is over"],
  wrong_version: ["take_round_model", "trained from another global model version than the round's"],
  not_selected: ["wait_for_task", "this round did not select the device"],
  unknown_client: ["send_hello", "the gateway never saw this device's hello"],
  too_stale: ["wait_for_task", "too many versions behind"],
  "duplicate-client": ["wait_for_task", "another update of this device already counts in this round"],
  weight: ["fix_device", "num_samples < 1"],
  norm: ["wait_for_task", "the update's L2 norm is above the gateway's bound"],
  "non-finite": ["fix_device", "the update holds NaN"], // fmfl 0.1.0 gateways; now non_finite
  shape: ["fix_device", "the gateway's validation: a delta of the wrong shape"],
  dtype: ["fix_device", "the gateway's validation: a delta of the wrong dtype"],
  indices: ["fix_device", "the gateway's validation: unsorted or repeated indices"],
  capacity: ["wait_for_task", "the gateway's buffer for this round is full"],
  size_mismatch: ["reprovision_bundle", "the payload's size is not the gateway's bundle's: re-export"],
  unknown_device: ["reprovision_key", "the gateway's device registry does not know this device"],
  revoked_device: ["reprovision_key", "this device was revoked"],
  unsigned: ["reprovision_key", "the gateway wants signed updates"],
  bad_signature: ["reprovision_key", "the signature does not verify under the registered key"],
  replayed_nonce: ["reprovision_key", "the gateway saw this nonce before"],
};
// Protocol errors in the update itself (section 8's ProtocolError reasons): fix the implementation.
for (const reason of ["bad_metadata", "invalid_id", "non_finite", "too_large", "truncated", "index_out_of_range", "malformed", "decompression", "unknown_type", "version", "trailing_bytes", "bad_magic", "checksum", "hash_mismatch", "wrong_type", "bad_codec_spec", "chunk_mismatch"]) {
  ACTIONS[reason] = ["fix_device", `the update breaks the protocol (${reason})`];
}

/**
 * What to do after `ack`.
 * @param {{accepted: boolean, reason: string}} ack
 * @returns {AckAction}
 */
export function ackAction(ack) {
  if (ack.accepted) return { dropFromOutbox: true, next: "none", why: "accepted" };
  const known = ACTIONS[ack.reason];
  // An unknown reason (a newer gateway) is still final for the update: drop it, wait for the next task.
  if (known === undefined) return { dropFromOutbox: true, next: "wait_for_task", why: `refused: ${ack.reason}` };
  return { dropFromOutbox: true, next: known[0], why: known[1] };
}

/** Every refusal reason of section 8 this table knows. */
export const KNOWN_REFUSALS = Object.freeze(Object.keys(ACTIONS));
