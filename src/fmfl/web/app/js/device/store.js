/**
 * A small key-value store on IndexedDB for the device core's caches: verified bundle files keyed by their
 * sha256 (a second visit downloads nothing) and prefix features keyed by (bundle id, data hash).
 * @module device/store
 */

const DB_NAME = "fmfl-device";
const DB_VERSION = 1;
export const STORES = ["files", "features"];

/**
 * @typedef {Object} Store
 * @property {(store: string, key: string) => Promise<any>} get     undefined when absent
 * @property {(store: string, key: string, value: any) => Promise<void>} put
 * @property {(store: string) => Promise<void>} clear
 * @property {() => void} close
 */

/** @template T @param {IDBRequest<T>} req @returns {Promise<T>} */
const done = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

/**
 * Open (creating on first use) the device's IndexedDB database.
 * @param {string} [name]  another name keeps test runs apart
 * @returns {Promise<Store>}
 */
export async function openStore(name = DB_NAME) {
  if (typeof indexedDB === "undefined") throw new Error("this browser has no IndexedDB: the device needs it for its caches and outbox");
  const open = indexedDB.open(name, DB_VERSION);
  open.onupgradeneeded = () => {
    for (const s of STORES) if (!open.result.objectStoreNames.contains(s)) open.result.createObjectStore(s);
  };
  const db = await done(open);
  const tx = (/** @type {string} */ store, /** @type {IDBTransactionMode} */ mode) => db.transaction(store, mode).objectStore(store);
  return {
    get: (store, key) => done(tx(store, "readonly").get(key)),
    put: async (store, key, value) => {
      const t = db.transaction(store, "readwrite");
      t.objectStore(store).put(value, key);
      await new Promise((resolve, reject) => { t.oncomplete = resolve; t.onerror = () => reject(t.error); t.onabort = () => reject(t.error); });
    },
    clear: async (store) => { await done(tx(store, "readwrite").clear()); },
    close: () => db.close(),
  };
}
