// js-md4 ships no types; this covers the one call the DSR makes.
declare module 'js-md4' {
  interface Md4 {
    arrayBuffer(message: ArrayBuffer | Uint8Array | string): ArrayBuffer;
  }
  const md4: Md4;
  export default md4;
}
