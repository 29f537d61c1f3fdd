/**
 * Where the kit keeps what must outlive a screen or a restart: the session's tokens and the
 * reporter's queue of fixes. Pluggable: `MemoryStorage` here; a browser passes a wrapper of
 * `localStorage`, React Native one of AsyncStorage or MMKV (see docs/clients.md).
 */
export interface KeyValueStorage {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
  remove(key: string): Promise<void>;
}

export class MemoryStorage implements KeyValueStorage {
  private readonly values = new Map<string, string>();

  async get(key: string): Promise<string | null> {
    return this.values.get(key) ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    this.values.set(key, value);
  }

  async remove(key: string): Promise<void> {
    this.values.delete(key);
  }
}

/**
 * A `localStorage`-like object (the browser's, or a test's) as a `KeyValueStorage`; with a
 * `prefix`, its keys apart from another app's on the same origin (two roles in one browser).
 */
export function fromWebStorage(
  store: {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
    removeItem(key: string): void;
  },
  prefix = "",
): KeyValueStorage {
  return {
    get: async (key) => store.getItem(prefix + key),
    set: async (key, value) => store.setItem(prefix + key, value),
    remove: async (key) => store.removeItem(prefix + key),
  };
}
