# gen_cdef.cmake — extract the HRM_CDEF block of core/hrm.h into lua/hrm/cdef.lua, without
# comments (LuaJIT's C parser takes none).
# Invoked as: cmake -DHEADER=core/hrm.h -DOUT=lua/hrm/cdef.lua -P cmake/gen_cdef.cmake
file(READ ${HEADER} text)
set(open_marker "/* HRM_CDEF_BEGIN */")
string(FIND "${text}" "${open_marker}" begin)
string(FIND "${text}" "/* HRM_CDEF_END */" end)
if(begin EQUAL -1 OR end EQUAL -1)
   message(FATAL_ERROR "HRM_CDEF markers not found in ${HEADER}")
endif()
string(LENGTH "${open_marker}" marker_len)
math(EXPR begin "${begin} + ${marker_len}")
math(EXPR len "${end} - ${begin}")
string(SUBSTRING "${text}" ${begin} ${len} block)
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" block "${block}")
string(REGEX REPLACE "[ \t]+\n" "\n" block "${block}")
string(REGEX REPLACE "\n\n\n+" "\n\n" block "${block}")
file(WRITE ${OUT}.tmp "-- Generated from core/hrm.h by cmake/gen_cdef.cmake: do not edit.\nreturn [==[${block}]==]\n")
file(RENAME ${OUT}.tmp ${OUT})
