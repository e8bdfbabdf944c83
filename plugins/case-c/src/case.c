/*
 * case-c: a Sluice WASM transform written in C against docs/abi.md (ABI
 * version 1), with no SDK: it upper- or lower-cases the ASCII letters of
 * string fields of each event. It proves that the ABI is enough to write a
 * module in a language other than Go, and is the C guest of the benchmarks.
 *
 * Build (Debian: apt-get install clang lld wasi-libc); build.sh runs this:
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *     -Wl,--strip-all -o case-c.wasm src/case.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* ---- ABI version 1 layout (docs/abi.md) ---- */
enum {
  BATCH_HEADER = 16, RECORD = 64, RESULT_HEADER = 16, OUTCOME = 16, OUTPUT = 32,
  PASS = 0, EMIT = 1, FAIL = 4,
};

static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint64_t pack(const void *p, uint32_t n) { return ((uint64_t)(uintptr_t)p << 32) | n; }

/* ---- buffers ---- */
static uint8_t *inbuf;             /* the host writes batches and config here */
static uint32_t incap;
static uint8_t *res;               /* result: header, outcomes, output table */
static uint32_t rescap;
static uint8_t *outbuf;            /* output payloads */
static uint32_t outcap, outlen;

static int grow(uint8_t **buf, uint32_t *cap, uint32_t need) {
  if (need <= *cap) return 1;
  uint32_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  uint8_t *b = realloc(*buf, n);
  if (!b) return 0;
  *buf = b; *cap = n;
  return 1;
}

EXPORT("sluice_abi_version") int32_t abi_version(void) { return 1; }

EXPORT("sluice_alloc") uint8_t *alloc(uint32_t size) {
  if (size > incap) {
    free(inbuf);
    inbuf = malloc(size);
    incap = inbuf ? size : 0;
  }
  return inbuf;
}

static const char description[] =
  "{\"name\":\"case-c\",\"version\":\"1.0.0\",\"sdk\":\"c\","
  "\"summary\":\"upper- or lower-cases the ASCII letters of string fields (written in C)\","
  "\"parameters\":["
  "{\"name\":\"fields\",\"type\":\"list of string\",\"required\":true,"
  "\"doc\":\"paths of string fields, from the payload's root (data.name); keys are matched as written, without unescaping\"},"
  "{\"name\":\"mode\",\"type\":\"string\",\"default\":\"upper\",\"doc\":\"upper or lower\"}]}";

EXPORT("sluice_describe") uint64_t describe(void) { return pack(description, sizeof description - 1); }

/* ---- a small JSON scanner (valid JSON is assumed, bounds are checked) ---- */
static const uint8_t *ws(const uint8_t *p, const uint8_t *e) {
  while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
  return p;
}

/* p at '"': returns the byte after the closing quote, or NULL. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *e) {
  for (p++; p < e; p++) {
    if (*p == '\\') p++;
    else if (*p == '"') return p + 1;
  }
  return NULL;
}

static const uint8_t *skip_value(const uint8_t *p, const uint8_t *e) {
  if (p >= e) return NULL;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; p < e; p++) {
      if (*p == '"') {
        p = skip_string(p, e);
        if (!p) return NULL;
        p--;
      } else if (*p == '{' || *p == '[') depth++;
      else if (*p == '}' || *p == ']') {
        if (--depth == 0) return p + 1;
      }
    }
    return NULL;
  }
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p > ' ') p++;
  return p;
}

/* Finds key in the object at p; sets *vs to its value. */
static int member(const uint8_t *p, const uint8_t *e, const uint8_t *key, uint32_t klen, const uint8_t **vs) {
  p = ws(p, e);
  if (p >= e || *p != '{') return 0;
  for (p++;;) {
    p = ws(p, e);
    if (p >= e || *p != '"') return 0;
    const uint8_t *ks = p + 1, *ke = skip_string(p, e);
    if (!ke) return 0;
    p = ws(ke, e);
    if (p >= e || *p != ':') return 0;
    p = ws(p + 1, e);
    if ((uint32_t)(ke - 1 - ks) == klen && memcmp(ks, key, klen) == 0) {
      *vs = p;
      return 1;
    }
    p = skip_value(p, e);
    if (!p) return 0;
    p = ws(p, e);
    if (p >= e || *p != ',') return 0;
    p++;
  }
}

/* ---- config ---- */
#define MAX_FIELDS 16
#define MAX_DEPTH 8
struct path { uint32_t n; const uint8_t *key[MAX_DEPTH]; uint32_t len[MAX_DEPTH]; };
static struct path paths[MAX_FIELDS];
static uint32_t npaths;
static int lower;
static uint8_t *config;            /* a copy of the config the paths point into */
static char errmsg[256];

static uint64_t reject(const char *msg) {
  size_t n = strlen(msg);
  if (n >= sizeof errmsg) n = sizeof errmsg - 1;
  memcpy(errmsg, msg, n);
  return pack(errmsg, (uint32_t)n);
}

static int parse_path(const uint8_t *s, uint32_t n, struct path *p) {
  if (n >= 2 && s[0] == '$' && s[1] == '.') { s += 2; n -= 2; }
  p->n = 0;
  uint32_t start = 0;
  for (uint32_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '.') {
      if (i == start || p->n == MAX_DEPTH) return 0;
      p->key[p->n] = s + start;
      p->len[p->n] = i - start;
      p->n++;
      start = i + 1;
    } else if (s[i] == '\\') {
      return 0;
    }
  }
  return 1;
}

EXPORT("sluice_init") uint64_t init(const uint8_t *ptr, uint32_t len) {
  free(config);
  config = malloc(len + 1);
  if (!config) return reject("out of memory");
  memcpy(config, ptr, len);
  const uint8_t *p = config, *e = config + len;
  npaths = 0;
  lower = 0;
  int have_fields = 0;
  p = ws(p, e);
  if (p >= e || *p != '{') return reject("config must be an object");
  p = ws(p + 1, e);
  while (p < e && *p != '}') {
    if (*p != '"') return reject("config is not valid JSON");
    const uint8_t *ks = p + 1, *ke = skip_string(p, e);
    if (!ke) return reject("config is not valid JSON");
    uint32_t klen = (uint32_t)(ke - 1 - ks);
    p = ws(ke, e);
    if (p >= e || *p != ':') return reject("config is not valid JSON");
    p = ws(p + 1, e);
    if (klen == 6 && memcmp(ks, "fields", 6) == 0) {
      if (p >= e || *p != '[') return reject("fields: want a list of paths");
      have_fields = 1;
      p = ws(p + 1, e);
      while (p < e && *p != ']') {
        if (*p != '"') return reject("fields: want a list of paths");
        const uint8_t *ve = skip_string(p, e);
        if (!ve) return reject("config is not valid JSON");
        if (npaths == MAX_FIELDS) return reject("fields: at most 16 paths");
        if (!parse_path(p + 1, (uint32_t)(ve - 1 - (p + 1)), &paths[npaths]))
          return reject("fields: a path is empty, has an empty key, an escape, or more than 8 keys");
        npaths++;
        p = ws(ve, e);
        if (p < e && *p == ',') p = ws(p + 1, e);
      }
      if (p >= e) return reject("config is not valid JSON");
      p++;
    } else if (klen == 4 && memcmp(ks, "mode", 4) == 0) {
      const uint8_t *ve = skip_value(p, e);
      if (!ve) return reject("config is not valid JSON");
      if (ve - p == 7 && memcmp(p, "\"upper\"", 7) == 0) lower = 0;
      else if (ve - p == 7 && memcmp(p, "\"lower\"", 7) == 0) lower = 1;
      else return reject("mode: want \"upper\" or \"lower\"");
      p = ve;
    } else {
      return reject("unknown config key (case-c takes fields and mode)");
    }
    p = ws(p, e);
    if (p < e && *p == ',') p = ws(p + 1, e);
  }
  if (!have_fields || npaths == 0) return reject("fields: list at least one field");
  return 0;
}

/* ---- the batch ---- */
struct out { uint32_t off, len; };
static struct out *outs;
static uint32_t outscap;

static inline int changes(uint8_t c) {
  return lower ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z');
}

/* Changes the letters of the string at s (a quote) up to e, skipping
 * escape sequences. With write == 0 it only reports whether any would
 * change. */
static int recase(uint8_t *s, const uint8_t *e, int write) {
  int any = 0;
  for (s++; s < e && *s != '"'; s++) {
    if (*s == '\\') {
      s += (s + 1 < e && s[1] == 'u') ? 5 : 1;
      continue;
    }
    if (changes(*s)) {
      if (!write) return 1;
      *s ^= 0x20;
      any = 1;
    }
  }
  return any;
}

static const uint8_t *find(const uint8_t *doc, const uint8_t *e, const struct path *p) {
  const uint8_t *v = doc;
  for (uint32_t k = 0; k < p->n; k++)
    if (!member(v, e, p->key[k], p->len[k], &v)) return NULL;
  return v;
}

EXPORT("sluice_process") uint64_t process(uint8_t *batch, uint32_t len) {
  uint32_t n = rd32(batch + 4);
  outlen = 0;
  if (n > outscap) {
    free(outs);
    outs = malloc(n * sizeof *outs);
    outscap = outs ? n : 0;
  }
  if (!grow(&res, &rescap, RESULT_HEADER + (OUTCOME + OUTPUT) * n) || !outs)
    __builtin_trap();
  uint32_t nout = 0;
  for (uint32_t i = 0; i < n; i++) {
    wr32(batch + 12, i); /* cursor */
    const uint8_t *d = batch + BATCH_HEADER + RECORD * i;
    uint8_t *doc = batch + rd32(d), *end = doc + rd32(d + 4);
    uint8_t *oc = res + RESULT_HEADER + OUTCOME * i;
    int copied = 0;
    uint32_t base = outlen;
    for (uint32_t f = 0; f < npaths; f++) {
      const uint8_t *src = copied ? outbuf + base : doc;
      const uint8_t *v = find(src, src + (end - doc), &paths[f]);
      if (!v || *v != '"') continue;
      uint32_t at = (uint32_t)(v - src);
      if (!copied) {
        if (!recase(doc + at, end, 0)) continue;
        if (!grow(&outbuf, &outcap, outlen + (uint32_t)(end - doc))) __builtin_trap();
        memcpy(outbuf + base, doc, end - doc);
        outlen += (uint32_t)(end - doc);
        copied = 1;
      }
      recase(outbuf + base + at, outbuf + outlen, 1);
    }
    if (copied) {
      outs[nout].off = base;
      outs[nout].len = outlen - base;
      wr32(oc, EMIT); wr32(oc + 4, nout); wr32(oc + 8, 1); wr32(oc + 12, 0);
      nout++;
    } else {
      wr32(oc, PASS); wr32(oc + 4, 0); wr32(oc + 8, 0); wr32(oc + 12, 0);
    }
  }
  /* outbuf may have moved while growing: addresses are written last. */
  uint8_t *table = res + RESULT_HEADER + OUTCOME * n;
  for (uint32_t j = 0; j < nout; j++) {
    uint8_t *o = table + OUTPUT * j;
    memset(o, 0, OUTPUT);
    wr32(o, (uint32_t)(uintptr_t)(outbuf + outs[j].off));
    wr32(o + 4, outs[j].len);
  }
  wr32(res, 1);
  wr32(res + 4, n);
  wr32(res + 8, (uint32_t)(uintptr_t)table);
  wr32(res + 12, nout);
  (void)len;
  return pack(res, RESULT_HEADER + OUTCOME * n + OUTPUT * nout);
}
