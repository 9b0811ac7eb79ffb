// The page's durable storage: one IndexedDB database with a key-value store and the outbox.
//
// IndexedDB is the browser's counterpart of the Python device's state folder (src/fmfl/edge_client/state.py):
// a readwrite transaction is atomic and durable once `complete` fires, so "write the outbox entry and the
// round it answers together" needs no temp-file-and-rename dance. Values are stored by structured clone:
// typed arrays, Uint8Array messages and non-extractable CryptoKeys go in as they are.

/** @typedef {{key: string, clientId: string, round: number, updateId: string, message: Uint8Array,
 *              residual: Float64Array | null, compact: boolean, createdAt: number}} OutboxRecord */

// Not "fmfl-device": js/device/store.js keeps its bundle and feature caches under that name, with its own schema.
export const DB_NAME = "fmfl-session";
const DB_VERSION = 1;
const KV = "kv";
const OUTBOX = "outbox";

/**
 * A promise for an IDBRequest's result.
 * @template T
 * @param {IDBRequest<T>} request
 * @returns {Promise<T>}
 */
function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * A promise that settles when a transaction commits (or fails): the durability point.
 * @param {IDBTransaction} tx
 * @returns {Promise<void>}
 */
function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
  });
}

/** The page's database: `get`/`put`/`remove` on the key-value store, and the outbox. */
export class Store {
  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /**
   * Opens (or creates) the database.
   * @param {IDBFactory} [factory]
   * @param {string} [name]
   * @returns {Promise<Store>}
   */
  static async open(factory = globalThis.indexedDB, name = DB_NAME) {
    const request = factory.open(name, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      if (!db.objectStoreNames.contains(KV)) db.createObjectStore(KV);
      if (!db.objectStoreNames.contains(OUTBOX)) {
        const outbox = db.createObjectStore(OUTBOX, { keyPath: "key" });
        outbox.createIndex("clientId", "clientId");
      }
    };
    return new Store(await done(request));
  }

  /**
   * @param {string} key
   * @returns {Promise<any>}
   */
  async get(key) {
    return done(this.db.transaction(KV, "readonly").objectStore(KV).get(key));
  }

  /**
   * Writes several keys in one atomic transaction (undefined values delete their key).
   * @param {Record<string, any>} values
   * @returns {Promise<void>}
   */
  async putAll(values) {
    const tx = this.db.transaction(KV, "readwrite");
    const kv = tx.objectStore(KV);
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined) kv.delete(key);
      else kv.put(value, key);
    }
    return committed(tx);
  }

  /**
   * @param {string} key
   * @param {any} value
   * @returns {Promise<void>}
   */
  async put(key, value) {
    return this.putAll({ [key]: value });
  }

  /**
   * The outbox entries of one client, oldest round first (keys sort by zero-padded round).
   * @param {string} clientId
   * @returns {Promise<OutboxRecord[]>}
   */
  async outbox(clientId) {
    const index = this.db.transaction(OUTBOX, "readonly").objectStore(OUTBOX).index("clientId");
    /** @type {OutboxRecord[]} */
    const rows = await done(index.getAll(clientId));
    return rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * The commit point of a round: the update's exact bytes and the key-value changes that go with it, in one
   * transaction, so a tab closed at any moment leaves either both or neither.
   * @param {OutboxRecord} record
   * @param {Record<string, any>} values
   * @returns {Promise<void>}
   */
  async commitOutbox(record, values) {
    const tx = this.db.transaction([OUTBOX, KV], "readwrite");
    tx.objectStore(OUTBOX).put(record);
    const kv = tx.objectStore(KV);
    for (const [key, value] of Object.entries(values)) kv.put(value, key);
    return committed(tx);
  }

  /**
   * Removes an outbox entry and writes key-value changes in the same transaction.
   * @param {string} key
   * @param {Record<string, any>} values
   * @returns {Promise<void>}
   */
  async removeOutbox(key, values) {
    const tx = this.db.transaction([OUTBOX, KV], "readwrite");
    tx.objectStore(OUTBOX).delete(key);
    const kv = tx.objectStore(KV);
    for (const [k, value] of Object.entries(values)) kv.put(value, k);
    return committed(tx);
  }

  /**
   * Deletes every outbox entry of a client and the given keys (a new bundle invalidates the old state).
   * @param {string} clientId
   * @param {string[]} keys
   * @returns {Promise<void>}
   */
  async clearClient(clientId, keys) {
    const rows = await this.outbox(clientId);
    const tx = this.db.transaction([OUTBOX, KV], "readwrite");
    for (const row of rows) tx.objectStore(OUTBOX).delete(row.key);
    for (const key of keys) tx.objectStore(KV).delete(key);
    return committed(tx);
  }

  close() {
    this.db.close();
  }
}
