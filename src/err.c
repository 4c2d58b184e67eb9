#include "err.h"

const char *skv_strerror(int err) {
    switch (err) {
    case SKV_OK: return "success";
#define SKV__ERR_MSG(name, code, msg) case SKV_E##name: return msg;
    SKV_ERRNO_MAP(SKV__ERR_MSG)
#undef SKV__ERR_MSG
    }
    return "unknown error";
}

const char *skv_errname(int err) {
    switch (err) {
    case SKV_OK: return "OK";
#define SKV__ERR_NAME(name, code, msg) case SKV_E##name: return "E" #name;
    SKV_ERRNO_MAP(SKV__ERR_NAME)
#undef SKV__ERR_NAME
    }
    return "EUNKNOWN";
}
