#ifndef TOLLGATE_LIST_H
#define TOLLGATE_LIST_H

/* Intrusive doubly linked lists: a node holds its own prev/next pointers (any two fields of
 * its struct), the owner holds the first node and, for some lists, the last. */

/* A throwaway for lists that keep no last node. */
#define TG_DLIST_NO_TAIL (&(void *){NULL})

/* Puts node first in a list that keeps no last node. */
#define TG_DLIST_PUSH(head, node, prev, next)                                                      \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = *(head);                                                                    \
        if (*(head) != NULL)                                                                       \
            (*(head))->prev = (node);                                                              \
        *(head) = (node);                                                                          \
    } while (0)

/* Takes node out of its list: its neighbours (or *head and *tail, at the ends) are linked
 * past it. The node's own prev/next are left as they were. */
#define TG_DLIST_UNLINK(head, tail, node, prev, next)                                              \
    do {                                                                                           \
        if ((node)->prev != NULL)                                                                  \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            *(head) = (node)->next;                                                                \
        if ((node)->next != NULL)                                                                  \
            (node)->next->prev = (node)->prev;                                                     \
        else                                                                                       \
            *(tail) = (node)->prev;                                                                \
    } while (0)

#endif
